//! `phyla tree`'s DOT output for a known set of stats files: every member labelled with name
//! and short id, a peer without a stats file dashed, one colour per source, edges pointing
//! away from the source, links told by both ends drawn once.

mod common;

use common::{TempDir, run};
use phyla_tools::dot;
use phyla_tools::stats::{self, GroupSnapshot, Snapshot, TreeLinks};

fn id(c: char) -> String {
    c.to_string().repeat(64)
}

fn node(name: &str, me: char, tree: &[(char, &[char])]) -> Snapshot {
    Snapshot {
        format: stats::FORMAT,
        name: name.into(),
        node_id: id(me),
        groups: vec![GroupSnapshot {
            name: "g".into(),
            id: "0123456789abcdef".into(),
            member: id(me),
            tree: tree
                .iter()
                .map(|(source, eager)| TreeLinks {
                    source: id(*source),
                    eager: eager.iter().map(|c| id(*c)).collect(),
                })
                .collect(),
            ..GroupSnapshot::default()
        }],
        ..Snapshot::default()
    }
}

/// a — b — c for source a; c — a, and b — d (d has no stats file; the link does not reach c,
/// so it has no direction) for source c; a fifth node in another group only.
fn snapshots() -> Vec<Snapshot> {
    let mut other = node("e", 'e', &[]);
    other.groups[0].name = "other".into();
    other.groups[0].id = "1111111111111111".into();
    vec![
        node("a", 'a', &[('a', &['b']), ('c', &['c'])]),
        node("b", 'b', &[('a', &['a', 'c']), ('c', &['d'])]),
        node("c", 'c', &[('a', &['b']), ('c', &['a'])]),
        other,
    ]
}

const GOLDEN: &str = r#"digraph "group g" {
  graph [label="group g: sources a aaaaaaaaaaaaaaaa (blue), c cccccccccccccccc (red)", labelloc=t, fontname="monospace"];
  node [shape=box, fontname="monospace", fontsize=10];
  edge [penwidth=1.5];
  "aaaaaaaaaaaaaaaa" [label="a\naaaaaaaaaaaaaaaa", color=blue, peripheries=2];
  "bbbbbbbbbbbbbbbb" [label="b\nbbbbbbbbbbbbbbbb"];
  "cccccccccccccccc" [label="c\ncccccccccccccccc", color=red, peripheries=2];
  "dddddddddddddddd" [label="dddddddddddddddd", style=dashed];
  subgraph "source_aaaaaaaaaaaaaaaa" {
    // source a aaaaaaaaaaaaaaaa (2 links)
    edge [color=blue];
    "aaaaaaaaaaaaaaaa" -> "bbbbbbbbbbbbbbbb";
    "bbbbbbbbbbbbbbbb" -> "cccccccccccccccc";
  }
  subgraph "source_cccccccccccccccc" {
    // source c cccccccccccccccc (2 links)
    edge [color=red];
    "cccccccccccccccc" -> "aaaaaaaaaaaaaaaa";
    "bbbbbbbbbbbbbbbb" -> "dddddddddddddddd" [dir=none];
  }
}
"#;

#[test]
fn dot_output_matches_the_golden_file() {
    assert_eq!(dot::render("g", &snapshots()), GOLDEN);
}

#[test]
fn tree_command_reads_the_run_directory() {
    let dir = TempDir::new("tree");
    for s in snapshots() {
        stats::write(&stats::path_of(dir.path(), &s.name), &s).expect("write");
    }
    std::fs::write(stats::path_of(dir.path(), "broken"), b"{").expect("write");
    let d = dir.path().to_str().unwrap_or_default().to_owned();
    let bin = env!("CARGO_BIN_EXE_phyla");
    let (status, out, err) = run(bin, &["tree", "--group", "g", "--run-dir", &d]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(format!("{out}\n"), GOLDEN);
    assert!(err.contains("broken"), "the garbled file is named: {err}");
    let (status, _, err) = run(bin, &["tree", "--group", "nope", "--run-dir", &d]);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("nope"), "{err}");
    let (status, _, _) = run(bin, &["tree"]);
    assert_eq!(status.code(), Some(2));
}

//! The stats snapshot file: what the daemon writes is what `phyla-stat`'s reader reads back,
//! field for field; missing, garbled and newer files are typed errors; `phyla-stat` shows good
//! nodes and reports bad ones on one line each without panicking.

mod common;

use std::collections::BTreeMap;

use common::{TempDir, run};
use phyla_tools::check::SourceReport;
use phyla_tools::stats::{
    self, GroupSnapshot, PeerSnapshot, ShardSnapshot, Snapshot, SnapshotError, TreeLinks,
};

fn id(c: char) -> String {
    c.to_string().repeat(64)
}

fn sample(name: &str, node: char) -> Snapshot {
    Snapshot {
        format: stats::FORMAT,
        name: name.into(),
        node_id: id(node),
        // This test process: alive, so the snapshot is not shown as stale.
        pid: std::process::id(),
        driver: "poll".into(),
        driver_reason: "configuration".into(),
        locators: vec!["127.0.0.1:7400".into()],
        started_ms: 1_000,
        written_ms: 3_500,
        uptime_ms: 2_500,
        shards: vec![ShardSnapshot {
            index: 0,
            locator: "127.0.0.1:7400".into(),
            counters: BTreeMap::from([
                ("driver.datagrams_sent".into(), 10),
                ("driver.datagrams_received".into(), 12),
                ("endpoint.datagrams_invalid".into(), 1),
            ]),
        }],
        groups: vec![GroupSnapshot {
            name: "market".into(),
            id: "00000000000000aa".into(),
            member: id(node),
            joined: true,
            published: 5,
            published_bytes: 320,
            delivered: 7,
            delivered_bytes: 448,
            lost: 1,
            repairs: 2,
            duplicates: 3,
            neighbors: vec![id('b')],
            counters: BTreeMap::from([("backpressured".into(), 4)]),
            sources: vec![SourceReport {
                source: id('b'),
                epoch: 9,
                delivered: 7,
                bytes: 448,
                first_sequence: 0,
                highest_sequence: 7,
                gaps: 1,
                lost: 1,
                expected: Some(8),
                highest_index: 8,
                complete: true,
                ..SourceReport::default()
            }],
            tree: vec![TreeLinks {
                source: id('b'),
                eager: vec![id('b')],
            }],
        }],
        peers: vec![PeerSnapshot {
            id: id('b'),
            locator: Some("127.0.0.1:7500".into()),
            state: Some("established".into()),
            counters: BTreeMap::from([("rtt_us".into(), 250)]),
        }],
        totals: BTreeMap::from([("invalid_frames".into(), 1)]),
    }
}

#[test]
fn snapshot_round_trips_through_the_reader() {
    let dir = TempDir::new("stats");
    let s = sample("node-a", 'a');
    let path = stats::path_of(dir.path(), "node-a");
    stats::write(&path, &s).expect("written");
    assert_eq!(stats::read(&path).expect("read back"), s);
    assert_eq!(
        stats::list(dir.path()).expect("listed"),
        vec!["node-a".to_owned()]
    );
    // No temporary file is left behind by the atomic write.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listing")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}

#[test]
fn snapshot_reader_reports_missing_garbled_and_newer_files() {
    let dir = TempDir::new("stats-bad");
    assert!(matches!(
        stats::read(&stats::path_of(dir.path(), "nobody")),
        Err(SnapshotError::Missing { .. })
    ));
    let garbled = stats::path_of(dir.path(), "garbled");
    std::fs::write(&garbled, b"{\"format\": 1, \"name\": ").expect("write");
    assert!(matches!(
        stats::read(&garbled),
        Err(SnapshotError::Garbled { .. })
    ));
    std::fs::write(&garbled, b"[1, 2, 3]").expect("write");
    assert!(matches!(
        stats::read(&garbled),
        Err(SnapshotError::Garbled { .. })
    ));
    let newer = stats::path_of(dir.path(), "newer");
    std::fs::write(&newer, b"{\"format\": 99}").expect("write");
    assert!(matches!(
        stats::read(&newer),
        Err(SnapshotError::Format { found: 99, .. })
    ));
    // A reader tolerates fields it does not know (a newer daemon adding counters).
    let mut v = serde_json::to_value(sample("x", 'c')).expect("to JSON");
    v["future_field"] = serde_json::json!({"a": 1});
    let extra = stats::path_of(dir.path(), "extra");
    std::fs::write(&extra, v.to_string()).expect("write");
    assert_eq!(stats::read(&extra).expect("read").name, "x");
}

#[test]
fn stat_shows_good_nodes_and_one_error_line_per_bad_one() {
    let bin = env!("CARGO_BIN_EXE_phyla-stat");
    let dir = TempDir::new("stat-tool");
    let d = dir.path().to_str().unwrap_or_default().to_owned();
    stats::write(
        &stats::path_of(dir.path(), "node-a"),
        &sample("node-a", 'a'),
    )
    .expect("write");

    let (status, out, err) = run(bin, &["--run-dir", &d]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.contains("node node-a (aaaaaaaaaaaaaaaa)"), "{out}");
    assert!(
        out.contains("market") && out.contains("sources of market"),
        "{out}"
    );
    assert!(
        out.contains("127.0.0.1:7500") && out.contains("established"),
        "{out}"
    );

    std::fs::write(stats::path_of(dir.path(), "node-b"), b"garbage").expect("write");
    let (status, out, err) = run(bin, &["--run-dir", &d]);
    assert_eq!(status.code(), Some(1));
    assert!(
        out.contains("node node-a"),
        "the good node is still shown: {out}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("node node-b") && l.contains("not a stats snapshot"))
    );

    let (status, out, _) = run(bin, &["--run-dir", &d, "node-a", "--json"]);
    assert_eq!(status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["nodes"][0]["name"], "node-a");
    assert_eq!(v["nodes"][0]["groups"][0]["sources"][0]["complete"], true);

    let (status, _, err) = run(bin, &["--run-dir", &d, "node-c"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("node node-c") && err.contains("no stats file"),
        "{err}"
    );

    let (status, _, _) = run(bin, &["--watch", "0"]);
    assert_eq!(status.code(), Some(2));
}

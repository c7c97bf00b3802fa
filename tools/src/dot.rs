//! A group's trees as Graphviz DOT, assembled from the stats files of its members.
//!
//! A node knows only its own tree links (its eager peers per source); the union of every
//! member's links is the whole tree. Nodes on one host, or on the testbed's namespaces, share
//! the filesystem, so the stats files in one run directory give the whole picture. Each source's
//! tree gets its own colour; an edge points away from the source (by hops from it, over the
//! links found) and has no arrow when the direction cannot be told (a link not connected to the
//! source in what the files show). Peers that have no stats file are drawn dashed, with only
//! their short id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use crate::stats::{Snapshot, short_id};

/// Edge colours, one per source, in order of the sources' ids.
const COLOURS: [&str; 8] = [
    "blue",
    "red",
    "darkgreen",
    "darkorange",
    "purple",
    "brown",
    "magenta",
    "cyan4",
];

/// The trees of group `group` (by name, or by its 16-digit hex id) as a DOT digraph, from the
/// snapshots of the nodes in one run directory. Output is deterministic: nodes, sources and
/// edges are sorted by id.
pub fn render(group: &str, snapshots: &[Snapshot]) -> String {
    // Members: short id -> name.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    // Per source: undirected links (smaller id first).
    let mut trees: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for s in snapshots {
        let Some(g) = s.groups.iter().find(|g| g.name == group || g.id == group) else {
            continue;
        };
        let member = if g.member.is_empty() {
            &s.node_id
        } else {
            &g.member
        };
        let me = short_id(member).to_owned();
        names.insert(me.clone(), s.name.clone());
        seen.insert(me.clone());
        for t in &g.tree {
            let links = trees.entry(short_id(&t.source).to_owned()).or_default();
            for peer in &t.eager {
                let peer = short_id(peer).to_owned();
                if peer == me {
                    continue;
                }
                seen.insert(peer.clone());
                let link = if me < peer {
                    (me.clone(), peer)
                } else {
                    (peer, me.clone())
                };
                links.insert(link);
            }
        }
    }
    for source in trees.keys() {
        seen.insert(source.clone());
    }

    let mut out = String::new();
    let legend: Vec<String> = trees
        .keys()
        .enumerate()
        .map(|(i, s)| format!("{} ({})", label_of(&names, s), COLOURS[i % COLOURS.len()]))
        .collect();
    let title = if legend.is_empty() {
        format!("group {group}: no tree links")
    } else {
        format!("group {group}: sources {}", legend.join(", "))
    };
    let _ = writeln!(out, "digraph \"{}\" {{", escape(&format!("group {group}")));
    let _ = writeln!(
        out,
        "  graph [label=\"{}\", labelloc=t, fontname=\"monospace\"];",
        escape(&title)
    );
    let _ = writeln!(
        out,
        "  node [shape=box, fontname=\"monospace\", fontsize=10];"
    );
    let _ = writeln!(out, "  edge [penwidth=1.5];");
    for id in &seen {
        let source_colour = trees
            .keys()
            .position(|s| s == id)
            .map(|i| COLOURS[i % COLOURS.len()]);
        let mut attrs = match names.get(id) {
            Some(name) => format!("label=\"{}\\n{id}\"", escape(name)),
            None => format!("label=\"{id}\", style=dashed"),
        };
        if let Some(c) = source_colour {
            let _ = write!(attrs, ", color={c}, peripheries=2");
        }
        let _ = writeln!(out, "  \"{id}\" [{attrs}];");
    }
    for (i, (source, links)) in trees.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let depth = depths(source, links);
        let _ = writeln!(
            out,
            "  subgraph \"source_{source}\" {{\n    // source {} ({} links)\n    edge [color={colour}];",
            escape(&label_of(&names, source)),
            links.len()
        );
        for (a, b) in links {
            let line = match (depth.get(a), depth.get(b)) {
                (Some(da), Some(db)) if da < db => format!("\"{a}\" -> \"{b}\";"),
                (Some(da), Some(db)) if db < da => format!("\"{b}\" -> \"{a}\";"),
                _ => format!("\"{a}\" -> \"{b}\" [dir=none];"),
            };
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(out, "  }}");
    }
    out.push_str("}\n");
    out
}

/// Hops from `source` over the undirected `links`.
fn depths(source: &str, links: &BTreeSet<(String, String)>) -> BTreeMap<String, u32> {
    let mut adjacent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in links {
        adjacent.entry(a).or_default().push(b);
        adjacent.entry(b).or_default().push(a);
    }
    let mut depth = BTreeMap::new();
    depth.insert(source.to_owned(), 0u32);
    let mut queue = VecDeque::from([source.to_owned()]);
    while let Some(n) = queue.pop_front() {
        let d = depth.get(&n).copied().unwrap_or(0);
        for next in adjacent.get(n.as_str()).into_iter().flatten() {
            if !depth.contains_key(*next) {
                depth.insert((*next).to_owned(), d + 1);
                queue.push_back((*next).to_owned());
            }
        }
    }
    depth
}

fn label_of(names: &BTreeMap<String, String>, id: &str) -> String {
    match names.get(id) {
        Some(n) => format!("{n} {id}"),
        None => id.to_owned(),
    }
}

/// Escapes a string for a DOT quoted identifier or label.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

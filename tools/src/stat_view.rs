//! `phyla-stat`'s readable view of a stats snapshot: one block per node, with tables per group,
//! per source, per peer and per shard, and rates when a previous snapshot is given.

use std::fmt::Write as _;

use crate::stats::{Snapshot, short_id};

/// Renders `now` as text; with `before` (an earlier snapshot of the same node), adds rates.
pub fn render(now: &Snapshot, before: Option<&Snapshot>) -> String {
    let mut out = String::new();
    let stale = if crate::stats::process_alive(now.pid) {
        ""
    } else {
        "  [stale: process not running]"
    };
    let _ = writeln!(
        out,
        "node {} ({})  pid {}  driver {}  up {}  locators {}{stale}",
        now.name,
        short_id(&now.node_id),
        now.pid,
        now.driver,
        duration(now.uptime_ms),
        if now.locators.is_empty() {
            "-".to_owned()
        } else {
            now.locators.join(", ")
        },
    );
    let seconds = before.and_then(|b| {
        let dt = now.written_ms.checked_sub(b.written_ms)?;
        (dt > 0).then_some(dt as f64 / 1000.0)
    });
    let rate = |n: u64, old: Option<u64>| match (seconds, old) {
        (Some(s), Some(o)) => format!("{:.0}/s", n.saturating_sub(o) as f64 / s),
        _ => "-".to_owned(),
    };

    let mut rows = Vec::new();
    for g in &now.groups {
        let old = before.and_then(|b| b.groups.iter().find(|o| o.id == g.id));
        rows.push(vec![
            g.name.clone(),
            if g.joined { "yes" } else { "no" }.to_owned(),
            g.neighbors.len().to_string(),
            g.published.to_string(),
            g.delivered.to_string(),
            bytes(g.delivered_bytes),
            g.lost.to_string(),
            g.repairs.to_string(),
            g.duplicates.to_string(),
            rate(g.delivered, old.map(|o| o.delivered)),
        ]);
    }
    if rows.is_empty() {
        out.push_str("  no groups\n");
    } else {
        table(
            &mut out,
            "  ",
            &[
                "group",
                "joined",
                "neighbors",
                "published",
                "delivered",
                "bytes",
                "lost",
                "repairs",
                "duplicates",
                "delivered/s",
            ],
            &rows,
        );
    }
    for g in now.groups.iter().filter(|g| !g.sources.is_empty()) {
        let _ = writeln!(out, "  sources of {}:", g.name);
        let rows: Vec<Vec<String>> = g
            .sources
            .iter()
            .map(|s| {
                vec![
                    short_id(&s.source).to_owned(),
                    s.epoch.to_string(),
                    s.delivered.to_string(),
                    s.expected.map_or_else(|| "-".into(), |e| e.to_string()),
                    s.highest_sequence.to_string(),
                    s.gaps.to_string(),
                    s.lost.to_string(),
                    s.out_of_order.to_string(),
                    s.corrupt.to_string(),
                    if s.complete { "yes" } else { "no" }.to_owned(),
                ]
            })
            .collect();
        table(
            &mut out,
            "    ",
            &[
                "source",
                "epoch",
                "delivered",
                "expected",
                "highest",
                "gaps",
                "lost",
                "out_of_order",
                "corrupt",
                "complete",
            ],
            &rows,
        );
    }
    if !now.peers.is_empty() {
        out.push_str("  peers:\n");
        let c = |p: &crate::stats::PeerSnapshot, k: &str| {
            p.counters.get(k).copied().unwrap_or(0).to_string()
        };
        let rows: Vec<Vec<String>> = now
            .peers
            .iter()
            .map(|p| {
                vec![
                    short_id(&p.id).to_owned(),
                    p.locator.clone().unwrap_or_else(|| "-".into()),
                    p.state.clone().unwrap_or_else(|| "-".into()),
                    c(p, "rtt_us"),
                    c(p, "session.datagrams_sent"),
                    c(p, "session.datagrams_received"),
                    c(p, "session.fragments_retransmitted"),
                    c(p, "session.messages_lost"),
                    c(p, "queued_frames"),
                ]
            })
            .collect();
        table(
            &mut out,
            "    ",
            &[
                "peer",
                "locator",
                "state",
                "rtt_us",
                "datagrams_sent",
                "received",
                "retransmitted",
                "lost",
                "queued",
            ],
            &rows,
        );
    }
    if !now.shards.is_empty() {
        out.push_str("  shards:\n");
        let rows: Vec<Vec<String>> = now
            .shards
            .iter()
            .map(|s| {
                let c = |k: &str| s.counters.get(k).copied().unwrap_or(0);
                let old = before
                    .and_then(|b| b.shards.iter().find(|o| o.index == s.index))
                    .map(|o| {
                        o.counters
                            .get("driver.datagrams_received")
                            .copied()
                            .unwrap_or(0)
                            + o.counters
                                .get("driver.datagrams_sent")
                                .copied()
                                .unwrap_or(0)
                    });
                vec![
                    s.index.to_string(),
                    s.locator.clone(),
                    c("driver.datagrams_sent").to_string(),
                    c("driver.datagrams_received").to_string(),
                    bytes(c("driver.bytes_sent")),
                    bytes(c("driver.bytes_received")),
                    (c("endpoint.datagrams_invalid") + c("group.invalid_frames")).to_string(),
                    c("driver.syscalls").to_string(),
                    rate(
                        c("driver.datagrams_received") + c("driver.datagrams_sent"),
                        old,
                    ),
                ]
            })
            .collect();
        table(
            &mut out,
            "    ",
            &[
                "shard",
                "locator",
                "datagrams_sent",
                "received",
                "bytes_sent",
                "received",
                "invalid",
                "syscalls",
                "datagrams/s",
            ],
            &rows,
        );
    }
    let t = |k: &str| now.totals.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "  totals: invalid_frames {}  frames_dropped {}  failures_declared {}  \
         suspicions_refuted {}  events_dropped {}",
        t("invalid_frames"),
        t("link.frames_dropped"),
        t("group.failures_declared"),
        t("group.suspicions_refuted"),
        t("events_dropped"),
    );
    out
}

/// Appends a left-aligned table, every line prefixed with `indent`.
fn table(out: &mut String, indent: &str, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from(indent);
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

/// Bytes with a binary unit.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Milliseconds as `1h2m3s`, `4m5s` or `6.7s`.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{}m{}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(6_700), "6.7s");
        assert_eq!(duration(3_723_000), "1h2m3s");
    }
}

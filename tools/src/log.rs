//! The daemon's event log: one JSON object per line on standard output.
//!
//! Every line starts with the same three fields, in this order, so that `grep` and `jq` both
//! work on it: `ts_ms` (wall clock, ms since the Unix epoch), `node` (the configured name) and
//! `event` (what happened); the event's own fields follow in name order. Node ids are short
//! (their first 16 hex digits, as everywhere in Phyla's logs). Every event kind is listed, with
//! an example line, in `docs/daemon.md`.

#![allow(
    clippy::disallowed_methods,
    reason = "a tool: log lines carry the wall-clock time"
)]

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes event lines for one node.
#[derive(Debug)]
pub struct EventLog<W: Write> {
    node: String,
    out: W,
    /// Lines that could not be written (a closed pipe): counted, never fatal, since the node's
    /// job is not its log.
    pub lines_failed: u64,
}

impl<W: Write> EventLog<W> {
    /// A log for node `node` writing to `out`.
    pub fn new(node: &str, out: W) -> Self {
        Self {
            node: node.to_owned(),
            out,
            lines_failed: 0,
        }
    }

    /// Writes one event line. `fields` should be a JSON object; anything else is written under
    /// the key `value`.
    pub fn emit(&mut self, event: &str, fields: Value) {
        let line = format_line(unix_ms(), &self.node, event, fields);
        if self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush())
            .is_err()
        {
            self.lines_failed += 1;
        }
    }
}

/// Events drained together, with identical ones (same kind and fields) collapsed into one
/// line carrying `"repeated": n`: a burst of the same event (a tree repaired once per missing
/// message) stays readable without hiding that it happened n times.
#[derive(Debug, Default)]
pub struct Coalesced {
    events: Vec<(&'static str, Value, u64)>,
}

impl Coalesced {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event; an identical one already in the batch only counts up.
    pub fn push(&mut self, kind: &'static str, fields: Value) {
        match self
            .events
            .iter_mut()
            .find(|(k, f, _)| *k == kind && *f == fields)
        {
            Some((_, _, n)) => *n += 1,
            None => self.events.push((kind, fields, 1)),
        }
    }

    /// Writes the batch to `log`, in first-seen order.
    pub fn emit<W: Write>(self, log: &mut EventLog<W>) {
        for (kind, mut fields, n) in self.events {
            if n > 1 {
                if let Value::Object(m) = &mut fields {
                    m.insert("repeated".into(), Value::from(n));
                }
            }
            log.emit(kind, fields);
        }
    }
}

/// One log line (with its newline): `ts_ms`, `node`, `event`, then `fields` in name order.
pub fn format_line(ts_ms: u64, node: &str, event: &str, fields: Value) -> String {
    let fields = match fields {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => Map::from_iter([("value".to_owned(), other)]),
    };
    let mut line = format!(
        "{{\"ts_ms\":{ts_ms},\"node\":{},\"event\":{}",
        Value::from(node),
        Value::from(event)
    );
    for (k, v) in fields {
        if matches!(k.as_str(), "ts_ms" | "node" | "event") {
            continue;
        }
        line.push(',');
        line.push_str(&Value::from(k).to_string());
        line.push(':');
        line.push_str(&v.to_string());
    }
    line.push_str("}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identical_events_in_a_batch_become_one_line() {
        let mut log = EventLog::new("a", Vec::new());
        let mut batch = Coalesced::new();
        for _ in 0..3 {
            batch.push("tree_repaired", json!({"source": "s", "via": "v"}));
        }
        batch.push("joined", json!({"group": "g"}));
        batch.emit(&mut log);
        let text = String::from_utf8(log.out).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"repeated\":3"), "{}", lines[0]);
        assert!(!lines[1].contains("repeated"));
    }

    #[test]
    fn lines_start_with_time_node_and_event() {
        let l = format_line(5, "a", "joined", json!({"group": "g", "event": "x"}));
        assert_eq!(
            l,
            "{\"ts_ms\":5,\"node\":\"a\",\"event\":\"joined\",\"group\":\"g\"}\n"
        );
        let v: Value = serde_json::from_str(&l).unwrap_or_default();
        assert_eq!(v["group"], "g");
    }
}

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

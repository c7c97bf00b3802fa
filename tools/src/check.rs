//! Checkable test messages, and the delivery checker every receiving tool runs.
//!
//! The daemon's publisher and `phyla publish` write messages that say who they are: a magic, the
//! message's index in its publisher's run, the run's total, and a filler derived from the index.
//! A receiver can then check each message (intact, in order, none twice) and tell when it has
//! seen a source's last message, without any side channel. Messages without the magic (`phyla
//! publish --stdin`, other applications) are counted, not checked.
//!
//! ```text
//!  0       4               12              20 ...                     len
//!  +-------+---------------+---------------+-------------------------+
//!  | "PHY1"| index u64 LE  | total u64 LE  | filler: (index + i) u8  |
//!  +-------+---------------+---------------+-------------------------+
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bytes of the checkable header; a checkable message is at least this long.
pub const HEADER_BYTES: usize = 20;
const MAGIC: &[u8; 4] = b"PHY1";

/// Writes checkable message `index` (1-based) of `total` into `buf` (at least [`HEADER_BYTES`]
/// long; shorter buffers get as much of the header as fits).
pub fn fill(buf: &mut [u8], index: u64, total: u64) {
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(MAGIC);
    header[4..12].copy_from_slice(&index.to_le_bytes());
    header[12..20].copy_from_slice(&total.to_le_bytes());
    let n = buf.len().min(HEADER_BYTES);
    buf[..n].copy_from_slice(&header[..n]);
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER_BYTES) {
        *b = index.wrapping_add(i as u64) as u8;
    }
}

/// What a received payload says about itself.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Payload {
    /// A checkable message, intact.
    Checked {
        /// Its index in its publisher's run (1-based).
        index: u64,
        /// The run's total.
        total: u64,
    },
    /// A checkable message whose filler is wrong: damaged on the way.
    Corrupt,
    /// Not a checkable message.
    Unchecked,
}

/// Reads a payload written by [`fill`].
pub fn inspect(payload: &[u8]) -> Payload {
    let Some(header) = payload.get(..HEADER_BYTES) else {
        return Payload::Unchecked;
    };
    if &header[..4] != MAGIC {
        return Payload::Unchecked;
    }
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[r]);
        u64::from_le_bytes(b)
    };
    let (index, total) = (word(4..12), word(12..20));
    let intact = payload
        .iter()
        .enumerate()
        .skip(HEADER_BYTES)
        .all(|(i, b)| *b == index.wrapping_add(i as u64) as u8);
    if intact && index >= 1 && index <= total {
        Payload::Checked { index, total }
    } else {
        Payload::Corrupt
    }
}

/// What one receiver got from one source (one incarnation of it) in one group. Also the form
/// of the per-source records in the stats file and the delivery reports.
#[derive(Clone, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
pub struct SourceReport {
    /// The source's member id (64 hex digits in stats files; short in log lines).
    pub source: String,
    /// The source's incarnation.
    pub epoch: u32,
    /// Messages delivered.
    pub delivered: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Sequence number of the first message delivered (a late joiner starts past 1).
    pub first_sequence: u64,
    /// Highest sequence number delivered.
    pub highest_sequence: u64,
    /// Sequence numbers skipped between deliveries (should equal `lost`).
    pub gaps: u64,
    /// Messages the engine reported lost (`messages_lost` events).
    pub lost: u64,
    /// Deliveries whose sequence was not above the previous one (never expected).
    pub out_of_order: u64,
    /// Checkable messages whose filler was wrong (never expected).
    pub corrupt: u64,
    /// Messages that were not checkable (e.g. `phyla publish --stdin`).
    pub unchecked: u64,
    /// The publisher's total, from checkable messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// Highest publisher index seen in checkable messages.
    #[serde(default)]
    pub highest_index: u64,
    /// The last message of the publisher's run was delivered.
    #[serde(default)]
    pub complete: bool,
}

/// Checks deliveries per (group, source, epoch) and keeps the counts for reports.
#[derive(Clone, Debug, Default)]
pub struct DeliveryChecker {
    sources: BTreeMap<(String, String, u32), SourceReport>,
    /// Delivered count at the last progress report, per key.
    reported: BTreeMap<(String, String, u32), u64>,
}

/// What [`DeliveryChecker::deliver`] noticed about one message.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Noticed {
    /// This message completed its publisher's run.
    pub completed: bool,
    /// This message was out of order or corrupt.
    pub anomaly: bool,
}

impl DeliveryChecker {
    /// A checker with nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one delivery.
    pub fn deliver(
        &mut self,
        group: &str,
        source: &str,
        epoch: u32,
        sequence: u64,
        payload: &[u8],
    ) -> Noticed {
        let r = self.entry(group, source, epoch);
        let mut noticed = Noticed::default();
        if r.delivered == 0 {
            r.first_sequence = sequence;
        } else if sequence <= r.highest_sequence {
            r.out_of_order += 1;
            noticed.anomaly = true;
        } else {
            r.gaps += sequence - r.highest_sequence - 1;
        }
        r.highest_sequence = r.highest_sequence.max(sequence);
        r.delivered += 1;
        r.bytes += payload.len() as u64;
        match inspect(payload) {
            Payload::Checked { index, total } => {
                r.expected = Some(total);
                r.highest_index = r.highest_index.max(index);
                if index == total && !r.complete {
                    r.complete = true;
                    noticed.completed = true;
                }
            }
            Payload::Corrupt => {
                r.corrupt += 1;
                noticed.anomaly = true;
            }
            Payload::Unchecked => r.unchecked += 1,
        }
        noticed
    }

    /// Records a `messages_lost` event.
    pub fn lost(&mut self, group: &str, source: &str, epoch: u32, first: u64, last: u64) {
        let r = self.entry(group, source, epoch);
        r.lost += last.saturating_sub(first) + 1;
    }

    /// Every source of `group` seen so far.
    pub fn reports(&self, group: &str) -> impl Iterator<Item = &SourceReport> + '_ {
        let group = group.to_owned();
        self.sources
            .iter()
            .filter(move |((g, _, _), _)| *g == group)
            .map(|(_, r)| r)
    }

    /// Sources (with their group) that delivered messages since the last call: for the
    /// periodic progress lines.
    pub fn progressed(&mut self) -> Vec<(String, SourceReport)> {
        let mut out = Vec::new();
        for (key, r) in &self.sources {
            let last = self.reported.entry(key.clone()).or_insert(0);
            if *last != r.delivered {
                *last = r.delivered;
                out.push((key.0.clone(), r.clone()));
            }
        }
        out
    }

    /// Totals over every source: delivered, lost, gaps, out of order, corrupt.
    pub fn totals(&self) -> SourceReport {
        let mut t = SourceReport::default();
        for r in self.sources.values() {
            t.delivered += r.delivered;
            t.bytes += r.bytes;
            t.gaps += r.gaps;
            t.lost += r.lost;
            t.out_of_order += r.out_of_order;
            t.corrupt += r.corrupt;
            t.unchecked += r.unchecked;
        }
        t
    }

    fn entry(&mut self, group: &str, source: &str, epoch: u32) -> &mut SourceReport {
        self.sources
            .entry((group.to_owned(), source.to_owned(), epoch))
            .or_insert_with(|| SourceReport {
                source: source.to_owned(),
                epoch,
                ..SourceReport::default()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_inspect_round_trip_and_catch_damage() {
        let mut m = vec![0u8; 64];
        fill(&mut m, 7, 9);
        assert_eq!(inspect(&m), Payload::Checked { index: 7, total: 9 });
        m[40] ^= 1;
        assert_eq!(inspect(&m), Payload::Corrupt);
        assert_eq!(inspect(b"hello"), Payload::Unchecked);
        let mut short = vec![0u8; HEADER_BYTES];
        fill(&mut short, 1, 1);
        assert_eq!(inspect(&short), Payload::Checked { index: 1, total: 1 });
    }

    #[test]
    fn checker_counts_gaps_disorder_and_completion() {
        let mut c = DeliveryChecker::new();
        let mut m = vec![0u8; 32];
        for (seq, index) in [(1, 1), (2, 2), (4, 4), (3, 3)] {
            fill(&mut m, index, 4);
            c.deliver("g", "s", 0, seq, &m);
        }
        c.lost("g", "s", 0, 3, 3);
        let r: Vec<_> = c.reports("g").cloned().collect();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].delivered, r[0].gaps, r[0].out_of_order), (4, 1, 1));
        assert_eq!(
            (r[0].lost, r[0].highest_sequence, r[0].complete),
            (1, 4, true)
        );
        assert_eq!(c.progressed().len(), 1);
        assert!(c.progressed().is_empty());
    }
}

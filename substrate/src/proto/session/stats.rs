//! Counters: what a session and an endpoint did, readable through the API (and, with the engine,
//! by the stat tool). Names follow `<subject>_<verb-past>`.

use crate::wire::DecodeError;

/// Per-session counters.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct SessionStats {
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Bytes of datagrams sent (UDP payload).
    pub bytes_sent: u64,
    /// Valid datagrams received.
    pub datagrams_received: u64,
    /// Bytes of valid datagrams received.
    pub bytes_received: u64,
    /// Received payload bytes copied: reassembly of messages that came in several fragments.
    /// A message that came in one fragment is delivered as a slice of its datagram, uncopied.
    /// (The receive side's only copy; the send side's are in `tx_payload_bytes_copied`.)
    pub payload_bytes_copied: u64,
    /// Message bytes sent in data fragments (first sends and retransmissions) that were copied
    /// into the transmit buffer. With [`payload_bytes_gathered`](Self::payload_bytes_gathered)
    /// it adds up to every message byte sent.
    pub tx_payload_bytes_copied: u64,
    /// Message bytes sent in data fragments without a copy: a fragment's body part handed to
    /// the driver as a gathered part of the datagram (see `SessionConfig::gather_min_bytes`).
    pub payload_bytes_gathered: u64,
    /// Messages accepted by `offer`.
    pub messages_offered: u64,
    /// Messages handed to the application by `recv`.
    pub messages_delivered: u64,
    /// Messages reported in `MessagesLost`.
    pub messages_lost: u64,
    /// Data fragments sent for the first time.
    pub fragments_sent: u64,
    /// Data fragments sent again (after a NAK or as a tail-loss probe).
    pub fragments_retransmitted: u64,
    /// Data fragments received that were already held or delivered.
    pub fragments_duplicate: u64,
    /// Data fragments dropped for breaking the advertised window.
    pub fragments_over_window: u64,
    /// NAK frames sent.
    pub naks_sent: u64,
    /// NAK frames received.
    pub naks_received: u64,
    /// NAK frames ignored: a datagram carried more than one for the same stream (only the first
    /// is acted on, which bounds the work one datagram can cause).
    pub naks_ignored: u64,
    /// Gap frames sent (repair refused: data no longer held).
    pub gaps_sent: u64,
    /// Fragments dropped unacknowledged from the retransmit window.
    pub fragments_evicted: u64,
    /// Offers refused with backpressure.
    pub offers_backpressured: u64,
    /// Heartbeats sent (requests and replies).
    pub heartbeats_sent: u64,
    /// Path validations started.
    pub path_challenges_sent: u64,
    /// Path validations that never got an answer.
    pub path_validations_failed: u64,
    /// Frames that broke the protocol (acks of unsent data, reassembly errors, …); dropped.
    pub frames_invalid: u64,
    /// Optional frames of unknown kind that were skipped.
    pub frames_unknown: u64,
}

/// Per-endpoint counters, including datagrams that reached no session.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct EndpointStats {
    /// Datagrams handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams dropped as malformed (sum of the per-class counters below).
    pub datagrams_invalid: u64,
    /// … because they were truncated or a length field lied.
    pub invalid_truncated: u64,
    /// … because the magic was wrong (not Phyla traffic).
    pub invalid_magic: u64,
    /// … because the wire version is not supported.
    pub invalid_version: u64,
    /// … because of an unknown mandatory frame kind or parameter.
    pub invalid_unknown_kind: u64,
    /// … because a field was out of range or oversized.
    pub invalid_field: u64,
    /// … because they were well-formed but made no sense (a Hello without a handshake frame).
    pub invalid_protocol: u64,
    /// Datagrams for a connection id this endpoint does not have.
    pub unknown_connection: u64,
    /// Sessions accepted from peers.
    pub sessions_accepted: u64,
    /// Hellos refused (not accepting, at the session limit, no common version).
    pub hellos_refused: u64,
    /// Stateless replies dropped because too many were queued.
    pub replies_dropped: u64,
    /// Late or replayed Hellos of sessions that already ended, ignored.
    pub hellos_stale: u64,
    /// Received payload bytes copied, summed over every session, ended ones included (see
    /// [`SessionStats::payload_bytes_copied`]).
    pub payload_bytes_copied: u64,
    /// Message bytes copied into transmit buffers, summed over every session, ended ones
    /// included (see [`SessionStats::tx_payload_bytes_copied`]).
    pub tx_payload_bytes_copied: u64,
    /// Message bytes sent without a copy, summed over every session, ended ones included (see
    /// [`SessionStats::payload_bytes_gathered`]).
    pub payload_bytes_gathered: u64,
}

impl EndpointStats {
    pub(crate) fn count_invalid(&mut self, e: DecodeError) {
        self.datagrams_invalid += 1;
        match e {
            DecodeError::Truncated { .. } | DecodeError::BadLength { .. } => {
                self.invalid_truncated += 1;
            }
            DecodeError::BadMagic(_) => self.invalid_magic += 1,
            DecodeError::UnsupportedVersion(_) => self.invalid_version += 1,
            DecodeError::UnknownFrameKind(_) | DecodeError::UnknownParameter(_) => {
                self.invalid_unknown_kind += 1;
            }
            _ => self.invalid_field += 1,
        }
    }
}

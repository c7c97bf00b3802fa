//! Session and endpoint configuration, validated once when the endpoint is built.

use thiserror::Error;

use crate::id::NodeId;
use crate::proto::rate::Rate;
use crate::time::Duration;
use crate::wire::MAX_DATAGRAM_BYTES;

/// How every session of an endpoint behaves. The defaults suit a LAN or loopback.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Receive window per stream: the most bytes the receiver buffers (out of order, reassembling
    /// or waiting for the application). Advertised in the handshake; the peer never exceeds it.
    pub window_bytes: u64,
    /// Sent-but-unacknowledged bytes a sender keeps for retransmission, per stream. `None` keeps
    /// everything in flight, which is capped at the smaller of the peer's window and this side's
    /// own, so nothing is ever lost (TCP-like). A smaller bound lets the sender run further
    /// ahead with bounded memory: a gap older than it cannot be repaired and is reported as
    /// `MessagesLost`.
    pub retransmit_window_bytes: Option<u64>,
    /// Offered-but-unsent bytes per stream; past it `offer` reports backpressure.
    pub send_buffer_bytes: u64,
    /// Largest datagram this endpoint sends or accepts (the path MTU less IP/UDP headers).
    pub max_datagram_bytes: usize,
    /// Most streams per session, in each direction.
    pub max_streams: u32,
    /// A session that hears nothing from its peer for this long is closed as timed out. Also the
    /// bound on a handshake.
    pub idle_timeout: Duration,
    /// How often a session sends a heartbeat (and a status for each stream it receives).
    pub heartbeat_interval: Duration,
    /// RTT assumed before the first sample.
    pub initial_rtt: Duration,
    /// Shortest wait for a reordered fragment before a NAK.
    pub nak_delay_min: Duration,
    /// Longest wait between repeated probes (NAKs, tail-loss probes, handshake retries) under
    /// backoff; bounds recovery time after a partition heals.
    pub probe_interval_max: Duration,
    /// Pacing rate for new streams; `None` sends as fast as flow control allows.
    pub default_rate: Option<Rate>,
    /// Gather sends: a data fragment that carries at least this many bytes of a message's body
    /// (the second part of [`Endpoint::offer_parts`](super::Endpoint::offer_parts), or the whole
    /// message of [`Endpoint::offer`](super::Endpoint::offer)) is not copied into the transmit
    /// buffer but handed to the driver as a part of the datagram ([`Transmit::gather`]), sent
    /// from where it is; frames before and after it share the datagram as usual. A datagram
    /// gathers at most [`Gather::MAX_PARTS`] bodies and copies the rest; smaller bodies are
    /// copied. `usize::MAX` turns gathering off. See `docs/architecture.md` ("Messages in two parts, and
    /// gathered fragments") for the measurements behind the default.
    ///
    /// [`Transmit::gather`]: crate::proto::Transmit::gather
    /// [`Gather::MAX_PARTS`]: crate::proto::Gather::MAX_PARTS
    pub gather_min_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            window_bytes: 4 << 20,
            retransmit_window_bytes: None,
            send_buffer_bytes: 4 << 20,
            max_datagram_bytes: 1_472,
            max_streams: 64,
            idle_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            initial_rtt: Duration::from_millis(50),
            nak_delay_min: Duration::from_millis(1),
            probe_interval_max: Duration::from_secs(1),
            default_rate: None,
            gather_min_bytes: DEFAULT_GATHER_MIN_BYTES,
        }
    }
}

/// The default [`SessionConfig::gather_min_bytes`], chosen by measurement (see
/// `docs/architecture.md`, "Messages in two parts, and gathered fragments").
pub const DEFAULT_GATHER_MIN_BYTES: usize = 1024;

/// Everything an [`Endpoint`](super::Endpoint) needs.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// This node's identity.
    pub node_id: NodeId,
    /// Settings for every session.
    pub session: SessionConfig,
    /// Whether peers may open sessions to this endpoint.
    pub accept_incoming: bool,
    /// Most sessions at once; further Hellos are refused.
    pub max_sessions: usize,
}

impl EndpointConfig {
    /// Defaults for `node_id`: accepts incoming sessions, up to 1,024.
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            session: SessionConfig::default(),
            accept_incoming: true,
            max_sessions: 1024,
        }
    }

    /// Checks that the settings are coherent.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting that is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        if !(MIN_DATAGRAM_BYTES..=MAX_DATAGRAM_BYTES).contains(&s.max_datagram_bytes) {
            return Err(ConfigError::Invalid {
                setting: "max_datagram_bytes",
                why: "must be between 128 and 65,507",
            });
        }
        if s.window_bytes < 2 * (s.max_datagram_bytes as u64 + super::FRAGMENT_OVERHEAD_BYTES) {
            return Err(ConfigError::Invalid {
                setting: "window_bytes",
                why: "must hold at least two full datagrams",
            });
        }
        if s.retransmit_window_bytes
            .is_some_and(|r| r < s.max_datagram_bytes as u64)
        {
            return Err(ConfigError::Invalid {
                setting: "retransmit_window_bytes",
                why: "must hold at least one datagram",
            });
        }
        // Sizes travel as handshake parameters and flow-control offsets: keep them well inside
        // the wire's 62-bit varints (2^48 bytes is 256 TiB).
        let sizes = [
            Some(s.window_bytes),
            Some(s.send_buffer_bytes),
            s.retransmit_window_bytes,
        ];
        if sizes.into_iter().flatten().any(|b| b > MAX_WINDOW_BYTES) {
            return Err(ConfigError::Invalid {
                setting: "window_bytes/send_buffer_bytes/retransmit_window_bytes",
                why: "must be at most 2^48",
            });
        }
        if s.send_buffer_bytes == 0 || s.max_streams == 0 {
            return Err(ConfigError::Invalid {
                setting: "send_buffer_bytes/max_streams",
                why: "must be non-zero",
            });
        }
        if s.heartbeat_interval.is_zero() || s.idle_timeout <= s.heartbeat_interval {
            return Err(ConfigError::Invalid {
                setting: "idle_timeout",
                why: "must be longer than a non-zero heartbeat_interval",
            });
        }
        if s.initial_rtt.is_zero() || s.probe_interval_max.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "initial_rtt/probe_interval_max",
                why: "must be non-zero",
            });
        }
        if s.gather_min_bytes == 0 {
            return Err(ConfigError::Invalid {
                setting: "gather_min_bytes",
                why: "must be non-zero (usize::MAX turns gathering off)",
            });
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                setting: "max_sessions",
                why: "must be non-zero",
            });
        }
        Ok(())
    }
}

/// Largest window or buffer size a configuration may name.
pub const MAX_WINDOW_BYTES: u64 = 1 << 48;

pub use crate::proto::MIN_DATAGRAM_BYTES;

/// A configuration that cannot work.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `setting` is wrong because `why`.
    #[error("invalid {setting}: {why}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What it must be.
        why: &'static str,
    },
}

//! What sessions report to the application, and the errors of their API calls.

use core::fmt;
use core::ops::Range;

use bytes::Bytes;
use thiserror::Error;

use crate::id::{Locator, NodeId, SessionHandle, StreamId};
use crate::wire::CloseCode;

/// Something that happened to a session. Failures are events, never silent.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Event {
    /// The handshake completed (or, on the responder, a peer's Hello was accepted).
    Connected {
        /// The session.
        session: SessionHandle,
        /// Who the peer is.
        peer: NodeId,
    },
    /// The peer's new locator passed path validation; the session now sends there.
    PathMigrated {
        /// The session.
        session: SessionHandle,
        /// The locator it used to send to.
        from: Locator,
        /// The locator it sends to now.
        to: Locator,
    },
    /// A stream has messages to `recv` (reported once per empty → non-empty change).
    Readable {
        /// The session.
        session: SessionHandle,
        /// The stream.
        stream: StreamId,
    },
    /// Messages `range` of a stream cannot be delivered: the sender no longer held them when they
    /// were asked for again. Messages before and after the range are delivered normally.
    MessagesLost {
        /// The session.
        session: SessionHandle,
        /// The stream.
        stream: StreamId,
        /// Message numbers lost (half-open).
        range: Range<u64>,
    },
    /// An `offer` on this stream was refused for lack of room (reported once until `Writable`).
    Backpressured {
        /// The session.
        session: SessionHandle,
        /// The stream.
        stream: StreamId,
    },
    /// A backpressured stream has room again.
    Writable {
        /// The session.
        session: SessionHandle,
        /// The stream.
        stream: StreamId,
    },
    /// Nothing was heard from the peer for the idle timeout (or the handshake got no answer).
    PeerTimedOut {
        /// The session.
        session: SessionHandle,
    },
    /// The session is over; its handle is free once its remaining messages are read.
    Closed {
        /// The session.
        session: SessionHandle,
        /// Why.
        cause: CloseCause,
    },
}

/// Why a session closed.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum CloseCause {
    /// This side closed it (`close` after the flush, or `abort`).
    Local(CloseCode),
    /// The peer sent a Close.
    Peer {
        /// The peer's code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The peer fell silent.
    TimedOut,
}

/// A message delivered in order on a stream.
#[derive(Clone, Eq, PartialEq)]
pub struct Message {
    /// Its number on the stream, from 0; lost messages leave holes reported by `MessagesLost`.
    pub number: u64,
    /// Its bytes.
    pub payload: Bytes,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message(#{}, {} bytes)", self.number, self.payload.len())
    }
}

/// Why `offer` did not take a message. Each variant hands the caller's buffer back.
#[derive(Clone, Debug, Eq, Error, PartialEq)]
pub enum OfferError<B> {
    /// The stream's send buffer is full: retry after `Writable`.
    #[error("backpressured")]
    BackPressured(B),
    /// No such session (never opened, or already gone).
    #[error("not connected")]
    NotConnected(B),
    /// The session is closing or closed.
    #[error("closed")]
    Closed(B),
    /// The message exceeds the largest the session can carry (the smaller of the peer's window
    /// and the send buffer); it can never be sent.
    #[error("message too large")]
    MessageTooLarge(B),
    /// The session already has its maximum number of streams.
    #[error("too many streams")]
    StreamLimit(B),
}

impl<B> OfferError<B> {
    /// Whether the same offer can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::BackPressured(_))
    }

    /// The buffer that was offered.
    pub fn into_inner(self) -> B {
        match self {
            Self::BackPressured(b)
            | Self::NotConnected(b)
            | Self::Closed(b)
            | Self::MessageTooLarge(b)
            | Self::StreamLimit(b) => b,
        }
    }
}

/// Why `connect` failed.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint already has `max_sessions` sessions.
    #[error("session limit reached")]
    SessionLimit,
}

//! Shared set-up: two endpoints, a connected session, a message pattern, and a checker.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;
use substrate::id::{NodeId, SessionHandle, StreamId};
use substrate::proto::session::{Endpoint, EndpointConfig, Event, OfferError, SessionConfig};
use substrate::rand::Rng;
use substrate::testing::{Cluster, LinkConfig, NodeIdx};
use substrate::time::Duration;

pub(crate) const STREAM: StreamId = StreamId(1);

pub(crate) fn endpoint(n: u64, session: SessionConfig) -> Endpoint {
    let mut config = EndpointConfig::new(NodeId::from_u64(n));
    config.session = session;
    Endpoint::new(config).expect("test config is valid")
}

/// A connected pair: `a` initiated the session to `b`.
pub(crate) struct Pair {
    pub(crate) c: Cluster<Endpoint>,
    pub(crate) a: NodeIdx,
    pub(crate) b: NodeIdx,
    pub(crate) sa: SessionHandle,
    pub(crate) sb: SessionHandle,
}

impl Pair {
    pub(crate) fn connect(
        seed: u64,
        link: LinkConfig,
        ca: SessionConfig,
        cb: SessionConfig,
    ) -> Self {
        Self::try_connect(seed, link, ca, cb).unwrap_or_else(|events| {
            panic!("handshake did not complete; initiator reported {events:?}")
        })
    }

    /// Connects, or returns the initiator's events if the handshake failed (it must then have
    /// reported the failure, not gone silent).
    pub(crate) fn try_connect(
        seed: u64,
        link: LinkConfig,
        ca: SessionConfig,
        cb: SessionConfig,
    ) -> Result<Self, Vec<Event>> {
        let mut c = Cluster::new(seed, link);
        let a = c.add_node(endpoint(1, ca));
        let b = c.add_node(endpoint(2, cb));
        let to = c.locator(b);
        let sa = c
            .with_node(a, |p, now, rng| p.connect(now, to, rng))
            .expect("room for a session");
        let deadline = c.now() + Duration::from_secs(30);
        let done = c
            .run_while(deadline, |c| {
                !(connected(c.events(a)) && connected(c.events(b)))
            })
            .expect("harness ran");
        if !done {
            return Err(c.take_events(a));
        }
        let sb = c
            .events(b)
            .iter()
            .find_map(|e| match e {
                Event::Connected { session, .. } => Some(*session),
                _ => None,
            })
            .expect("b saw Connected");
        c.take_events(a);
        c.take_events(b);
        Ok(Self { c, a, b, sa, sb })
    }
}

fn connected(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Connected { .. }))
}

/// Size of message `n` in the mixed workload: mostly small, some medium, a few up to 64 KiB.
pub(crate) fn mixed_size(n: u64) -> usize {
    let mut r = Rng::with_seed(n ^ 0xA5A5);
    match r.below(100) {
        0..80 => 1 + r.below(256) as usize,
        80..95 => 256 + r.below(4096 - 256) as usize,
        _ => 4096 + r.below(65_536 - 4096 + 1) as usize,
    }
}

/// The payload of message `n`: its size, and bytes that depend on `n`, so that any mix-up shows.
pub(crate) fn payload(n: u64, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    let tag = n.to_le_bytes();
    for (i, b) in v.iter_mut().enumerate() {
        *b = tag[i % 8] ^ (i as u8);
    }
    Bytes::from(v)
}

/// Drives a stream from `a` to `b`: offers `total` messages as fast as the sender takes them,
/// reads at `b` as they arrive, and checks the invariants after every step of the harness.
pub(crate) struct Transfer {
    pub(crate) total: u64,
    pub(crate) size: fn(u64) -> usize,
    /// Sizes are capped here (the session refuses messages that could never fit its windows).
    pub(crate) max_size: usize,
    pub(crate) offered: u64,
    /// Every message number `b` read, in order of reading.
    pub(crate) delivered: Vec<u64>,
    pub(crate) lost: Vec<Range<u64>>,
    /// Every event `b` reported, in order.
    pub(crate) events_b: Vec<Event>,
    pub(crate) window_bytes: u64,
    pub(crate) retransmit_bytes: u64,
    pub(crate) max_buffered: u64,
    pub(crate) max_retained: u64,
    /// Whether `b` reads (a stopped consumer does not).
    pub(crate) reading: bool,
    /// The next message, refused for backpressure and handed back.
    refused: Option<Bytes>,
    /// The session ended under the transfer (only a test that allows it sets `allow_end`).
    pub(crate) ended: bool,
    pub(crate) allow_end: bool,
}

impl Transfer {
    pub(crate) fn new(
        total: u64,
        size: fn(u64) -> usize,
        window_bytes: u64,
        retransmit_bytes: u64,
    ) -> Self {
        Self {
            total,
            size,
            max_size: usize::MAX,
            offered: 0,
            delivered: Vec::new(),
            lost: Vec::new(),
            events_b: Vec::new(),
            window_bytes,
            retransmit_bytes,
            max_buffered: 0,
            max_retained: 0,
            reading: true,
            refused: None,
            ended: false,
            allow_end: false,
        }
    }

    fn size_of(&self, n: u64) -> usize {
        (self.size)(n).min(self.max_size)
    }

    pub(crate) fn finished(&self) -> bool {
        if self.ended {
            return true;
        }
        let lost: u64 = self.lost.iter().map(|r| r.end - r.start).sum();
        self.delivered.len() as u64 + lost >= self.total
    }

    /// Offers and reads what can be, then takes one harness step. Returns false when the
    /// harness has nothing left to do.
    pub(crate) fn step(&mut self, p: &mut Pair) -> bool {
        let (sa, sb) = (p.sa, p.sb);
        while self.offered < self.total {
            let n = self.offered;
            // A refused offer hands the message back: keep it for the next try.
            let body = self
                .refused
                .take()
                .unwrap_or_else(|| payload(n, self.size_of(n)));
            match p
                .c
                .with_node(p.a, |e, now, _| e.offer(now, sa, STREAM, body))
            {
                Ok(number) => {
                    assert_eq!(number, n, "message numbers are consecutive");
                    self.offered += 1;
                }
                Err(OfferError::BackPressured(body)) => {
                    self.refused = Some(body);
                    break;
                }
                Err(OfferError::NotConnected(_) | OfferError::Closed(_)) if self.allow_end => {
                    self.ended = true;
                    break;
                }
                Err(e) => panic!(
                    "offer of message {n} failed: {e}; a's events {:?}",
                    p.c.events(p.a)
                ),
            }
        }
        if self.reading {
            let got = p.c.with_node(p.b, |e, _, _| {
                let mut got = Vec::new();
                while let Some(m) = e.recv(sb, STREAM) {
                    got.push(m);
                }
                got
            });
            for m in got {
                let expected = payload(m.number, self.size_of(m.number));
                assert!(m.payload == expected, "message {} corrupted", m.number);
                self.delivered.push(m.number);
            }
        }
        for e in p.c.take_events(p.b) {
            if let Event::MessagesLost { range, .. } = &e {
                self.lost.push(range.clone());
            }
            self.events_b.push(e);
        }
        let buffered = p.c.node(p.b).buffered_bytes(sb, STREAM).unwrap_or(0);
        let retained = p.c.node(p.a).retained_bytes(sa, STREAM).unwrap_or(0);
        assert!(
            buffered <= self.window_bytes,
            "receiver holds {buffered} > window"
        );
        assert!(
            retained <= self.retransmit_bytes,
            "sender retains {retained} > bound"
        );
        self.max_buffered = self.max_buffered.max(buffered);
        self.max_retained = self.max_retained.max(retained);
        p.c.step()
    }

    /// Runs until every message is delivered or reported lost, or `limit` passes.
    pub(crate) fn run(&mut self, p: &mut Pair, limit: Duration) {
        let deadline = p.c.now() + limit;
        while !self.finished() && p.c.now() < deadline {
            if !self.step(p) {
                break;
            }
        }
        // One last read for what arrived on the final step.
        self.reading_pass(p);
        assert!(p.c.fault().is_none(), "harness fault: {:?}", p.c.fault());
    }

    fn reading_pass(&mut self, p: &mut Pair) {
        if self.reading {
            let sb = p.sb;
            let got = p.c.with_node(p.b, |e, _, _| {
                std::iter::from_fn(|| e.recv(sb, STREAM))
                    .map(|m| m.number)
                    .collect::<Vec<_>>()
            });
            self.delivered.extend(got);
        }
    }

    /// Every message delivered exactly once, in order, and none lost.
    pub(crate) fn assert_all_delivered_in_order(&self) {
        assert!(self.lost.is_empty(), "unexpected loss: {:?}", self.lost);
        assert_eq!(self.delivered.len() as u64, self.total, "delivered count");
        for (i, &n) in self.delivered.iter().enumerate() {
            assert_eq!(n, i as u64, "out of order or duplicate at position {i}");
        }
    }
}

/// Builds a datagram for connection `cid` holding `frames`: what an attacker or a test forges.
pub(crate) fn datagram(
    cid: substrate::id::ConnectionId,
    frames: &[substrate::wire::Frame<'_>],
) -> Vec<u8> {
    use substrate::wire::{HEADER_LEN, Header, VERSION_1};
    let mut buf = vec![0u8; substrate::wire::MAX_DATAGRAM_BYTES];
    let header = Header {
        version: VERSION_1,
        flags: 0,
        destination: cid,
    };
    header.encode(&mut buf).expect("a header fits");
    let mut at = HEADER_LEN;
    for f in frames {
        at += f
            .encode(&mut buf[at..])
            .expect("test frames fit one datagram");
    }
    buf.truncate(at);
    buf
}

/// Records every datagram `node` sends from now on (an on-path observer).
pub(crate) fn tap(c: &mut Cluster<Endpoint>, node: NodeIdx) -> Rc<RefCell<Vec<Vec<u8>>>> {
    let seen: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let sink = seen.clone();
    c.set_on_transmit(move |t| {
        if t.node == node {
            sink.borrow_mut().push(t.bytes.to_vec());
        }
    });
    seen
}

/// Drains `node`'s pending events (so later assertions see only new ones).
pub(crate) fn events(c: &mut Cluster<Endpoint>, node: NodeIdx) -> Vec<Event> {
    c.take_events(node)
}

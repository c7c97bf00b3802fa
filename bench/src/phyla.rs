//! Phyla's own rows: the engine's public API (`substrate::runtime::Node`), as a user links it.
//!
//! Each process runs one node with one shard in invoker mode: the benchmark's own thread runs
//! the shard's duty cycle, so there is no extra thread per process to starve the other core.
//! Throughput rows coalesce messages into datagrams of up to 65,507 B (the loopback limit) or,
//! in the second row of each driver, 1,472 B as on Ethernet. Latency rows busy-spin or park
//! (wait in the kernel for the next datagram).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use substrate::id::{NodeId, StreamId};
use substrate::proto::session::SessionConfig;
use substrate::runtime::driver::{DriverConfig, DriverKind};
use substrate::runtime::idle::IdleStrategy;
use substrate::runtime::{Counters, Node, NodeEvent, OfferError, SessionId, Threading};

use crate::child::ChildSpec;
use crate::contender::Contender;
use crate::meter::RECEIVE_TIMEOUT;
use crate::pingpong::{PingPongContender, REPLY_TIMEOUT, RoundTrip, echo_matches};
use crate::throughput::{self, RxReport, ThroughputContender, TxReport};

const STREAM: StreamId = StreamId(1);

/// A Phyla throughput row: a driver and a datagram size.
#[derive(Clone, Copy, Debug)]
pub struct PhylaThroughput {
    name: &'static str,
    mode: &'static str,
    driver: DriverKind,
    datagram_bytes: usize,
}

impl PhylaThroughput {
    /// Every throughput row: each driver, datagrams up to the loopback limit and up to 1,472 B.
    pub fn all() -> [Self; 4] {
        [
            Self::new(
                "phyla-uring",
                "uring, datagrams <= 65,507 B",
                DriverKind::Uring,
                65_507,
            ),
            Self::new(
                "phyla-uring-1472",
                "uring, datagrams <= 1,472 B",
                DriverKind::Uring,
                1_472,
            ),
            Self::new(
                "phyla-poll",
                "poll, datagrams <= 65,507 B",
                DriverKind::Poll,
                65_507,
            ),
            Self::new(
                "phyla-poll-1472",
                "poll, datagrams <= 1,472 B",
                DriverKind::Poll,
                1_472,
            ),
        ]
    }

    const fn new(
        name: &'static str,
        mode: &'static str,
        driver: DriverKind,
        datagram_bytes: usize,
    ) -> Self {
        Self {
            name,
            mode,
            driver,
            datagram_bytes,
        }
    }
}

/// `SessionConfig::gather_min_bytes` of the Phyla rows: `PHYLA_GATHER_MIN_BYTES` (bytes, or
/// `off`), else the library's default. An environment variable rather than an option so that one
/// build compares settings run by run; the benchmark's child processes inherit it.
fn gather_min_bytes() -> usize {
    let default = substrate::proto::session::DEFAULT_GATHER_MIN_BYTES;
    match std::env::var("PHYLA_GATHER_MIN_BYTES") {
        Ok(v) if v.trim() == "off" => usize::MAX,
        Ok(v) => v.trim().parse().unwrap_or(default),
        Err(_) => default,
    }
}

/// A node as the benchmarks configure it.
fn node(id: u64, driver: DriverKind, datagram_bytes: usize, idle: IdleStrategy) -> Result<Node> {
    let session = SessionConfig {
        max_datagram_bytes: datagram_bytes,
        // The receive window bounds the datagrams a receiver holds, each in a receive slot: 4 MiB
        // of charged bytes stays well inside the pool below even for small messages.
        window_bytes: 4 << 20,
        send_buffer_bytes: 8 << 20,
        gather_min_bytes: gather_min_bytes(),
        ..SessionConfig::default()
    };
    // Small datagrams get small slots, and more of them.
    let slot = datagram_bytes.max(2048);
    let slots = ((64 << 20) / slot).clamp(1024, 16_384);
    let driver_config = DriverConfig {
        rx_slot_bytes: slot,
        rx_slots: slots,
        tx_slot_bytes: slot,
        tx_slots: 256,
        socket_buffer_bytes: 32 << 20,
        ..DriverConfig::default()
    };
    Node::builder(NodeId::from_u64(id))
        .shards(1)
        .driver(driver)
        .threading(Threading::Invoker)
        .idle(idle)
        .session(session)
        .driver_config(driver_config)
        .publication_bytes(16 << 20)
        .pin(false)
        .build()
        .context("starting the Phyla node")
}

/// Runs `node` until the session to `to` is connected.
pub(crate) fn connect(node: &mut Node, to: &str) -> Result<SessionId> {
    let to: SocketAddr = to.parse().with_context(|| format!("endpoint {to:?}"))?;
    let session = node.connect(to)?;
    let deadline = Instant::now() + REPLY_TIMEOUT * 5;
    loop {
        node.invoke();
        while let Some(e) = node.poll_event() {
            match e {
                NodeEvent::Connected { session: s, .. } if s == session => return Ok(session),
                NodeEvent::ConnectFailed { error, .. } => bail!("connect: {error}"),
                NodeEvent::PeerTimedOut { .. } => bail!("connect: no answer from {to}"),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("connect: no answer from {to}");
        }
    }
}

/// Copies per message and the counters a report carries.
fn counters_json(c: &Counters, messages: u64, bytes: u64) -> serde_json::Value {
    let per = |v: u64| {
        if bytes == 0 {
            0.0
        } else {
            v as f64 / bytes as f64
        }
    };
    json!({
        "datagrams_sent": c.datagrams_sent,
        "datagrams_received": c.datagrams_received,
        "messages": messages,
        "syscalls": c.syscalls,
        "cycles": c.cycles,
        "zero_copy_sends": c.zero_copy_sends,
        "rx_pool_exhausted": c.rx_pool_exhausted,
        "payload_bytes_gathered": c.payload_bytes_gathered,
        "payload_copies_per_byte": {
            "offer": per(c.offer_bytes_copied),
            "send_datagram_write": per(c.tx_payload_bytes_copied),
            "receive_reassembly": per(c.rx_payload_bytes_copied),
            "receive_pool_exhausted": per(c.rx_fallback_bytes_copied),
        },
    })
}

/// Every Phyla row, of either program, is named by its `name` and `mode` fields.
macro_rules! phyla_contender {
    ($row:ty) => {
        impl Contender for $row {
            fn name(&self) -> &'static str {
                self.name
            }

            fn system(&self) -> &'static str {
                "Phyla"
            }

            fn mode(&self) -> &'static str {
                self.mode
            }
        }
    };
}

phyla_contender!(PhylaThroughput);
phyla_contender!(PhylaPingPong);

impl ThroughputContender for PhylaThroughput {
    fn run_rx(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<RxReport> {
        let mut node = node(2, self.driver, self.datagram_bytes, IdleStrategy::BusySpin)?;
        let mut sub = node.subscribe(STREAM)?;
        ready(&node.locators()[0].to_string());
        let mut meter = crate::meter::Meter::new(spec.warmup, spec.duration);
        let mut last_check = Instant::now();
        loop {
            node.invoke();
            let (mut messages, mut bytes) = (0u64, 0u64);
            sub.poll(
                |d| {
                    messages += 1;
                    bytes += d.payload.len() as u64;
                },
                usize::MAX,
            );
            if messages > 0 {
                if !meter.record(messages, bytes) {
                    break;
                }
            } else if last_check.elapsed() >= RECEIVE_TIMEOUT {
                last_check = Instant::now();
                if !meter.idle()? {
                    break;
                }
            }
            while node.poll_event().is_some() {}
        }
        let mut report = meter.report();
        let c = node.counters();
        report.extra.insert(
            "phyla".to_owned(),
            counters_json(&c, report.messages_total, report.bytes_total),
        );
        report
            .extra
            .insert("driver".to_owned(), json!(node.driver().0.name()));
        Ok(report)
    }

    fn run_tx(&self, spec: &ChildSpec) -> Result<TxReport> {
        let mut node = node(1, self.driver, self.datagram_bytes, IdleStrategy::BusySpin)?;
        let session = connect(&mut node, spec.endpoint()?)?;
        let mut publication = node.publication(session, STREAM)?;
        let payload = vec![0x5a_u8; spec.payload_bytes];
        let deadline = throughput::send_deadline(spec);
        let start = Instant::now();
        let mut now = start;
        let mut sent = 0u64;
        while now < deadline {
            // Offer a batch, then one duty cycle: many messages share each datagram.
            for _ in 0..1024 {
                match publication.offer(&payload) {
                    Ok(_) => sent += 1,
                    Err(OfferError::BackPressured) => break,
                    Err(e) => bail!("offer: {e}"),
                }
            }
            node.invoke();
            while let Some(e) = node.poll_event() {
                if let NodeEvent::Closed { cause, .. } = e {
                    bail!("session closed: {cause}");
                }
            }
            now = Instant::now();
        }
        // Close in order: the session sends everything offered, then the Close, so the
        // receiver's count of lost messages is exact.
        let elapsed = now - start;
        let session_stats = node.session_counters(session);
        node.close(session)?;
        let flush_until = Instant::now() + Duration::from_secs(5);
        'flush: while Instant::now() < flush_until {
            node.invoke();
            while let Some(e) = node.poll_event() {
                if matches!(e, NodeEvent::Closed { .. }) {
                    break 'flush;
                }
            }
        }
        let mut extra = serde_json::Map::new();
        if let Some(st) = session_stats {
            extra.insert(
                "session".to_owned(),
                json!({
                    "fragments_sent": st.fragments_sent,
                    "fragments_retransmitted": st.fragments_retransmitted,
                    "naks_received": st.naks_received,
                    "offers_backpressured": st.offers_backpressured,
                }),
            );
        }
        let c = node.counters();
        extra.insert(
            "phyla".to_owned(),
            counters_json(&c, sent, sent * spec.payload_bytes as u64),
        );
        Ok(TxReport {
            messages: sent,
            bytes: sent * spec.payload_bytes as u64,
            elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            extra,
        })
    }
}

/// A Phyla ping-pong row: a driver and how idle processes wait.
#[derive(Clone, Copy, Debug)]
pub struct PhylaPingPong {
    name: &'static str,
    mode: &'static str,
    driver: DriverKind,
    park: bool,
}

impl PhylaPingPong {
    /// Every latency row: each driver, busy-spinning and parked.
    pub fn all() -> [Self; 4] {
        [
            Self::new(
                "phyla-uring-spin",
                "uring, busy-spin",
                DriverKind::Uring,
                false,
            ),
            Self::new("phyla-uring-park", "uring, park", DriverKind::Uring, true),
            Self::new(
                "phyla-poll-spin",
                "poll, busy-spin",
                DriverKind::Poll,
                false,
            ),
            Self::new("phyla-poll-park", "poll, park", DriverKind::Poll, true),
        ]
    }

    const fn new(name: &'static str, mode: &'static str, driver: DriverKind, park: bool) -> Self {
        Self {
            name,
            mode,
            driver,
            park,
        }
    }

    fn idle(&self) -> IdleStrategy {
        if self.park {
            IdleStrategy::park()
        } else {
            IdleStrategy::BusySpin
        }
    }
}

/// One duty cycle: waiting in the kernel if parked, yielding the core if the two processes
/// share one.
fn cycle(node: &mut Node, park: bool, shared_core: bool) {
    let work = if park {
        node.invoke_idle()
    } else {
        node.invoke()
    };
    if work == 0 && shared_core && !park {
        std::thread::yield_now();
    }
}

impl PingPongContender for PhylaPingPong {
    fn run_server(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<()> {
        let mut node = node(2, self.driver, 65_507, self.idle())?;
        let mut sub = node.subscribe(STREAM)?;
        ready(&node.locators()[0].to_string());
        let mut publication = None;
        let mut replies = Vec::new();
        loop {
            cycle(&mut node, self.park, spec.shared_core);
            sub.poll(|d| replies.push(d), usize::MAX);
            for d in replies.drain(..) {
                if d.payload.is_empty() {
                    return Ok(());
                }
                let p = match &mut publication {
                    Some(p) => p,
                    None => publication.insert(node.publication(d.session, STREAM)?),
                };
                // The received bytes go back as they are: a view of the receive buffer.
                while let Err(e) = p.offer_bytes(d.payload.clone()) {
                    if e != OfferError::BackPressured {
                        bail!("offer: {e}");
                    }
                    node.invoke();
                }
            }
            while node.poll_event().is_some() {}
        }
    }

    fn connect(&self, spec: &ChildSpec) -> Result<Box<dyn RoundTrip>> {
        let mut node = node(1, self.driver, 65_507, self.idle())?;
        let session = connect(&mut node, spec.endpoint()?)?;
        let publication = node.publication(session, STREAM)?;
        let subscription = node.subscribe(STREAM)?;
        Ok(Box::new(PhylaClient {
            node,
            publication,
            subscription,
            park: self.park,
            shared_core: spec.shared_core,
        }))
    }
}

/// The client side of a Phyla ping-pong.
struct PhylaClient {
    node: Node,
    publication: substrate::runtime::Publication,
    subscription: substrate::runtime::Subscription,
    park: bool,
    shared_core: bool,
}

impl RoundTrip for PhylaClient {
    fn round_trip(&mut self, request: &[u8]) -> Result<()> {
        while let Err(e) = self.publication.offer(request) {
            if e != OfferError::BackPressured {
                bail!("offer: {e}");
            }
            self.node.invoke();
        }
        let start = Instant::now();
        loop {
            cycle(&mut self.node, self.park, self.shared_core);
            let mut got = None;
            self.subscription
                .poll(|d| got = Some(echo_matches(request, &d.payload)), 1);
            match got {
                Some(true) => return Ok(()),
                Some(false) => {}
                None if start.elapsed() > REPLY_TIMEOUT => {
                    bail!("no reply within {REPLY_TIMEOUT:?}")
                }
                None => {}
            }
        }
    }

    fn stop(&mut self) -> Result<()> {
        if std::env::var_os("PHYLA_BENCH_DEBUG").is_some() {
            let _ = std::fs::write(
                "/tmp/phyla-client.txt",
                format!("{:?}", self.node.counters()),
            );
        }
        self.publication
            .offer(&[])
            .map_err(|e| anyhow::anyhow!("sending the stop message: {e}"))?;
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            self.node.invoke();
        }
        Ok(())
    }
}

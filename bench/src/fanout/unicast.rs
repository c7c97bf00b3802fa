//! Baseline A: the same payload sent as N separate unicast publications, one Phyla session per
//! receiver, as an application without groups would write it (`offer` of the same slice on each
//! publication in turn). Every process runs one node with one shard in invoker mode and the
//! library's defaults otherwise (sessions of 1,472-byte datagrams, as the group engine's), so
//! that the two Phyla rows differ only in how they fan out.

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use substrate::id::{NodeId, StreamId};
use substrate::proto::session::SessionConfig;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::idle::IdleStrategy;
use substrate::runtime::{Counters, Node, OfferError, Publication, Subscription, Threading};

use super::side::{FanoutSpec, Publish, Receive};
use crate::phyla;

/// The stream every message goes on.
const STREAM: StreamId = StreamId(1);

/// Connects to every receiver (`spec.endpoints`); ready once every session is up.
pub(super) fn publisher(spec: &FanoutSpec) -> Result<(Box<dyn Publish>, String)> {
    let mut node = node(spec, 0)?;
    let mut publications = Vec::with_capacity(spec.endpoints.len());
    for endpoint in &spec.endpoints {
        let session = phyla::connect(&mut node, endpoint)
            .with_context(|| format!("connecting to the receiver at {endpoint}"))?;
        publications.push(node.publication(session, STREAM)?);
    }
    if publications.len() != spec.receivers {
        bail!(
            "{} receivers but {} endpoints",
            spec.receivers,
            publications.len()
        );
    }
    let endpoint = locator(&node)?;
    Ok((
        Box::new(UnicastPublisher {
            node,
            publications,
            next: 0,
            sessions_closed: 0,
        }),
        endpoint,
    ))
}

/// Binds and subscribes; ready at once (the publisher connects to it).
pub(super) fn receiver(spec: &FanoutSpec) -> Result<(Box<dyn Receive>, String)> {
    let mut node = node(spec, spec.index)?;
    let subscription = node.subscribe(STREAM)?;
    let endpoint = locator(&node)?;
    Ok((Box::new(UnicastReceiver { node, subscription }), endpoint))
}

/// The idle strategy a spec names.
///
/// # Errors
/// When it names none.
pub(super) fn idle(spec: &FanoutSpec) -> Result<IdleStrategy> {
    IdleStrategy::parse(&spec.idle)
        .with_context(|| format!("unknown idle strategy {:?}", spec.idle))
}

/// The driver a spec names (`None`: the engine chooses).
///
/// # Errors
/// When it names none.
pub(super) fn driver(spec: &FanoutSpec) -> Result<Option<DriverKind>> {
    spec.driver
        .as_deref()
        .map(|name| DriverKind::parse(name).with_context(|| format!("unknown driver {name:?}")))
        .transpose()
}

/// The engine's counters that matter here, with the process-wide payload-copy counters.
pub(super) fn counters_json(c: &Counters) -> Value {
    json!({
        "datagrams_sent": c.datagrams_sent,
        "bytes_sent": c.bytes_sent,
        "datagrams_received": c.datagrams_received,
        "bytes_received": c.bytes_received,
        "syscalls": c.syscalls,
        "cycles": c.cycles,
        "messages_offered": c.messages_offered,
        "messages_delivered": c.messages_delivered,
        "zero_copy_sends": c.zero_copy_sends,
        "rx_pool_exhausted": c.rx_pool_exhausted,
        "tx_slots_exhausted": c.tx_slots_exhausted,
        "copies": {
            "offer_bytes": c.offer_bytes_copied,
            "tx_slot_bytes": c.tx_payload_bytes_copied,
            "tx_gathered_bytes": c.payload_bytes_gathered,
            "rx_reassembly_bytes": c.rx_payload_bytes_copied,
            "rx_fallback_bytes": c.rx_fallback_bytes_copied,
            "rx_copybreak_bytes": c.rx_copybreak_bytes_copied,
        },
    })
}

fn node(spec: &FanoutSpec, index: usize) -> Result<Node> {
    let mut builder = Node::builder(NodeId::from_u64(index as u64 + 1))
        .shards(1)
        .threading(Threading::Invoker)
        .idle(idle(spec)?)
        .session(session_config(spec))
        .pin(false);
    if let Some(driver) = driver(spec)? {
        builder = builder.driver(driver);
    }
    builder.build().context("starting the Phyla node")
}

/// The sessions' settings: the library's defaults, with `--gather-min` applied.
pub(super) fn session_config(spec: &FanoutSpec) -> SessionConfig {
    let mut session = SessionConfig::default();
    if let Some(bytes) = spec.gather_min_bytes {
        session.gather_min_bytes = bytes;
    }
    session.max_datagram_bytes = spec.datagram_bytes;
    session
}

fn locator(node: &Node) -> Result<String> {
    node.locators()
        .first()
        .map(ToString::to_string)
        .context("the node has no locator")
}

/// The publishing side: one publication per receiver.
struct UnicastPublisher {
    node: Node,
    publications: Vec<Publication>,
    /// The first publication that has not taken the current message yet.
    next: usize,
    sessions_closed: u64,
}

impl Publish for UnicastPublisher {
    fn offer(&mut self, payload: &[u8]) -> Result<bool> {
        while let Some(publication) = self.publications.get_mut(self.next) {
            match publication.offer(payload) {
                Ok(_) => self.next += 1,
                Err(OfferError::BackPressured) => return Ok(false),
                Err(error) => bail!("offer to receiver {}: {error}", self.next + 1),
            }
        }
        self.next = 0;
        Ok(true)
    }

    fn cycle(&mut self, idle: bool) -> Result<usize> {
        let work = if idle {
            self.node.invoke_idle()
        } else {
            self.node.invoke()
        };
        while let Some(event) = self.node.poll_event() {
            if matches!(event, substrate::runtime::NodeEvent::Closed { .. }) {
                self.sessions_closed += 1;
            }
        }
        Ok(work)
    }

    fn report(&mut self) -> Value {
        json!({
            "driver": self.node.driver().0.name(),
            "sessions_closed": self.sessions_closed,
            "phyla": counters_json(&self.node.counters()),
        })
    }
}

/// The receiving side: a subscription on every session.
struct UnicastReceiver {
    node: Node,
    subscription: Subscription,
}

impl Receive for UnicastReceiver {
    fn poll(&mut self, idle: bool, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        if idle {
            self.node.invoke_idle();
        } else {
            self.node.invoke();
        }
        let count = self
            .subscription
            .poll(|delivery| on_message(&delivery.payload), usize::MAX);
        while self.node.poll_event().is_some() {}
        Ok(count)
    }

    fn report(&mut self) -> Value {
        json!({
            "driver": self.node.driver().0.name(),
            "phyla": counters_json(&self.node.counters()),
        })
    }
}

//! The ZeroMQ baselines: libzmq (the system library, through the `zmq` crate) over TCP on
//! 127.0.0.1.
//!
//! - [`ZmqPushPull`] (throughput): PUSH connects to PULL; high-water marks of about 32 MiB of
//!   messages (at least 1,000, at most 100,000 messages) on both sides.
//! - [`ZmqReqRep`] (latency): REQ sends, REP echoes the same message back.
//!
//! Each process is pinned to one core before it creates its ZeroMQ context, so libzmq's I/O
//! thread shares the core with the application thread, as in a one-core-per-process deployment.
//!
//! Built without the `zeromq` feature, both contenders report themselves unavailable and their
//! rows are skipped.

use anyhow::Result;

use crate::child::ChildSpec;
use crate::contender::Contender;
use crate::pingpong::{LatencyBaseline, PingPongContender, RoundTrip};
use crate::throughput::{RxReport, ThroughputBaseline, ThroughputContender, TxReport};

/// Throughput baseline: ZeroMQ PUSH/PULL over TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZmqPushPull;

impl Contender for ZmqPushPull {
    fn name(&self) -> &'static str {
        "zmq"
    }

    fn system(&self) -> &'static str {
        "ZeroMQ"
    }

    fn mode(&self) -> &'static str {
        "PUSH/PULL tcp"
    }

    fn available(&self) -> Result<(), String> {
        imp::available()
    }
}

impl ThroughputContender for ZmqPushPull {
    fn baseline(&self) -> Option<ThroughputBaseline> {
        Some(ThroughputBaseline::ZeroMq)
    }

    fn run_rx(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<RxReport> {
        imp::pull(spec, ready)
    }

    fn run_tx(&self, spec: &ChildSpec) -> Result<TxReport> {
        imp::push(spec)
    }
}

/// Latency baseline: ZeroMQ REQ/REP over TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZmqReqRep;

impl Contender for ZmqReqRep {
    fn name(&self) -> &'static str {
        "zmq"
    }

    fn system(&self) -> &'static str {
        "ZeroMQ"
    }

    fn mode(&self) -> &'static str {
        "REQ/REP tcp"
    }

    fn available(&self) -> Result<(), String> {
        imp::available()
    }
}

impl PingPongContender for ZmqReqRep {
    fn baseline(&self) -> Option<LatencyBaseline> {
        Some(LatencyBaseline::ZeroMq)
    }

    fn run_server(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<()> {
        imp::reply(spec, ready)
    }

    fn connect(&self, spec: &ChildSpec) -> Result<Box<dyn RoundTrip>> {
        imp::request(spec)
    }
}

/// The libzmq version linked, e.g. `4.3.4`, if built with the `zeromq` feature.
pub fn version() -> Option<String> {
    imp::version()
}

#[cfg(feature = "zeromq")]
mod imp {
    use std::time::Instant;

    use anyhow::{Context as _, Result, anyhow, bail};
    use serde_json::json;

    use crate::child::ChildSpec;
    use crate::meter::{Meter, RECEIVE_TIMEOUT};
    use crate::pingpong::{REPLY_TIMEOUT, RoundTrip, echo_matches};
    use crate::throughput::{self, RxReport, TxReport};

    /// Messages between two reads of the receiver's clock.
    const METER_EVERY: u64 = 64;

    /// How long closing the sender may take to deliver what is queued.
    const LINGER_MS: i32 = 2_000;

    pub(super) fn available() -> Result<(), String> {
        Ok(())
    }

    pub(super) fn version() -> Option<String> {
        let (major, minor, patch) = zmq::version();
        Some(format!("{major}.{minor}.{patch}"))
    }

    pub(super) fn pull(spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<RxReport> {
        let context = zmq::Context::new();
        let socket = context
            .socket(zmq::PULL)
            .context("creating a PULL socket")?;
        let hwm = high_water_mark(spec.payload_bytes);
        socket.set_rcvhwm(hwm).context("ZMQ_RCVHWM")?;
        socket
            .set_rcvtimeo(millis(RECEIVE_TIMEOUT))
            .context("ZMQ_RCVTIMEO")?;
        socket.set_linger(0).context("ZMQ_LINGER")?;
        socket
            .bind("tcp://127.0.0.1:*")
            .context("binding tcp://127.0.0.1:*")?;
        ready(&last_endpoint(&socket)?);

        let mut meter = Meter::new(spec.warmup, spec.duration);
        let mut message = zmq::Message::new();
        let (mut messages, mut bytes) = (0_u64, 0_u64);
        loop {
            match socket.recv(&mut message, 0) {
                Ok(()) => {
                    messages += 1;
                    bytes += message.len() as u64;
                    if messages == METER_EVERY {
                        let go_on = meter.record(messages, bytes);
                        (messages, bytes) = (0, 0);
                        if !go_on {
                            break;
                        }
                    }
                }
                Err(zmq::Error::EAGAIN) => {
                    meter.record(messages, bytes);
                    (messages, bytes) = (0, 0);
                    if !meter.idle()? {
                        break;
                    }
                }
                Err(zmq::Error::EINTR) => {}
                Err(error) => return Err(error).context("zmq recv"),
            }
        }
        let mut report = meter.report();
        report.extra.insert("hwm".to_owned(), json!(hwm));
        report.extra.insert("libzmq".to_owned(), json!(version()));
        Ok(report)
    }

    pub(super) fn push(spec: &ChildSpec) -> Result<TxReport> {
        let context = zmq::Context::new();
        let socket = context
            .socket(zmq::PUSH)
            .context("creating a PUSH socket")?;
        let hwm = high_water_mark(spec.payload_bytes);
        socket.set_sndhwm(hwm).context("ZMQ_SNDHWM")?;
        socket
            .set_sndtimeo(millis(RECEIVE_TIMEOUT))
            .context("ZMQ_SNDTIMEO")?;
        socket.set_linger(LINGER_MS).context("ZMQ_LINGER")?;
        socket
            .connect(spec.endpoint()?)
            .context("connecting the PUSH socket")?;
        let payload = vec![0x5a_u8; spec.payload_bytes];
        let deadline = throughput::send_deadline(spec);
        let start = Instant::now();
        let mut now = start;
        let mut sent = 0_u64;
        while now < deadline {
            for _ in 0..METER_EVERY {
                match socket.send(&payload[..], 0) {
                    Ok(()) => sent += 1,
                    // The high-water mark held for the whole send timeout: check the clock.
                    Err(zmq::Error::EAGAIN) => break,
                    Err(zmq::Error::EINTR) => {}
                    Err(error) => return Err(error).context("zmq send"),
                }
            }
            now = Instant::now();
        }
        let mut extra = serde_json::Map::new();
        extra.insert("hwm".to_owned(), json!(hwm));
        Ok(TxReport {
            messages: sent,
            bytes: sent * spec.payload_bytes as u64,
            elapsed_ns: u64::try_from((now - start).as_nanos()).unwrap_or(u64::MAX),
            extra,
        })
    }

    pub(super) fn reply(_spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<()> {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::REP).context("creating a REP socket")?;
        socket.set_linger(0).context("ZMQ_LINGER")?;
        socket
            .bind("tcp://127.0.0.1:*")
            .context("binding tcp://127.0.0.1:*")?;
        ready(&last_endpoint(&socket)?);
        loop {
            let mut message = zmq::Message::new();
            match socket.recv(&mut message, 0) {
                Ok(()) if message.is_empty() => return Ok(()),
                // The received message goes back as it is, without a copy.
                Ok(()) => socket.send(message, 0).context("zmq send")?,
                Err(zmq::Error::EINTR) => {}
                Err(error) => return Err(error).context("zmq recv"),
            }
        }
    }

    pub(super) fn request(spec: &ChildSpec) -> Result<Box<dyn RoundTrip>> {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::REQ).context("creating a REQ socket")?;
        socket
            .set_rcvtimeo(millis(REPLY_TIMEOUT))
            .context("ZMQ_RCVTIMEO")?;
        socket.set_linger(LINGER_MS).context("ZMQ_LINGER")?;
        socket
            .connect(spec.endpoint()?)
            .context("connecting the REQ socket")?;
        Ok(Box::new(Requester {
            socket,
            reply: zmq::Message::new(),
            _context: context,
        }))
    }

    /// The client side of REQ/REP.
    struct Requester {
        // Dropped before the context, which waits for the socket to close.
        socket: zmq::Socket,
        reply: zmq::Message,
        _context: zmq::Context,
    }

    impl RoundTrip for Requester {
        fn round_trip(&mut self, request: &[u8]) -> Result<()> {
            self.socket.send(request, 0).context("zmq send")?;
            loop {
                match self.socket.recv(&mut self.reply, 0) {
                    Ok(()) if echo_matches(request, &self.reply) => return Ok(()),
                    Ok(()) => bail!("the reply does not echo the request"),
                    Err(zmq::Error::EAGAIN) => bail!("no reply within {REPLY_TIMEOUT:?}"),
                    Err(zmq::Error::EINTR) => {}
                    Err(error) => return Err(error).context("zmq recv"),
                }
            }
        }

        fn stop(&mut self) -> Result<()> {
            self.socket
                .send(&[][..], 0)
                .context("sending the stop message")
        }
    }

    /// About 32 MiB of messages, between 1,000 (ZeroMQ's default) and 100,000 messages.
    fn high_water_mark(payload_bytes: usize) -> i32 {
        let messages = (32 << 20) / payload_bytes.max(1);
        i32::try_from(messages.clamp(1_000, 100_000)).unwrap_or(1_000)
    }

    fn last_endpoint(socket: &zmq::Socket) -> Result<String> {
        socket
            .get_last_endpoint()
            .context("ZMQ_LAST_ENDPOINT")?
            .map_err(|raw| anyhow!("endpoint is not UTF-8: {raw:?}"))
    }

    fn millis(duration: std::time::Duration) -> i32 {
        i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
    }
}

#[cfg(not(feature = "zeromq"))]
mod imp {
    use anyhow::{Result, bail};

    use crate::child::ChildSpec;
    use crate::pingpong::RoundTrip;
    use crate::throughput::{RxReport, TxReport};

    const MISSING: &str = "built without the `zeromq` feature (needs libzmq3-dev and pkg-config)";

    pub(super) fn available() -> Result<(), String> {
        Err(MISSING.to_owned())
    }

    pub(super) fn version() -> Option<String> {
        None
    }

    pub(super) fn pull(_: &ChildSpec, _: &mut dyn FnMut(&str)) -> Result<RxReport> {
        bail!(MISSING)
    }

    pub(super) fn push(_: &ChildSpec) -> Result<TxReport> {
        bail!(MISSING)
    }

    pub(super) fn reply(_: &ChildSpec, _: &mut dyn FnMut(&str)) -> Result<()> {
        bail!(MISSING)
    }

    pub(super) fn request(_: &ChildSpec) -> Result<Box<dyn RoundTrip>> {
        bail!(MISSING)
    }
}

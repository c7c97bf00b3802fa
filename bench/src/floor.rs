//! The kernel floor: plain UDP on 127.0.0.1, the least any messaging layer over UDP can cost.
//!
//! - [`UdpFloor`] (throughput): `sendmmsg`/`recvmmsg` in batches of [`BATCH`], one message per
//!   datagram, a forced large receive buffer. UDP drops what the receiver cannot keep up with, so
//!   the row reports what was sent and what was lost as well as the receive rate.
//! - [`UdpPingPong`] (latency): one datagram each way, either with blocking sockets (the receiving
//!   thread sleeps and is woken by the kernel) or busy-polling (`recv` with `MSG_DONTWAIT` in a
//!   spin, in both processes).
//!
//! A 64 KiB payload does not fit in a UDP datagram: sizes above [`MAX_UDP_PAYLOAD`] (65,507 B,
//! 65,535 less the IPv4 and UDP headers) are sent as 65,507 B, and the table says so.

use std::io::{self, ErrorKind};
use std::net::UdpSocket;
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::child::ChildSpec;
use crate::contender::Contender;
use crate::meter::{Meter, RECEIVE_TIMEOUT};
use crate::pingpong::{LatencyBaseline, PingPongContender, REPLY_TIMEOUT, RoundTrip, echo_matches};
use crate::sys::{self, RecvBatch, SendBatch};
use crate::throughput::{self, RxReport, ThroughputBaseline, ThroughputContender, TxReport};

/// Datagrams per `sendmmsg`/`recvmmsg` call.
pub const BATCH: usize = 64;

/// The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Receive buffer asked for (root may exceed `net.core.rmem_max` with `SO_RCVBUFFORCE`).
const RECEIVE_BUFFER_BYTES: usize = 64 << 20;

/// Send buffer asked for.
const SEND_BUFFER_BYTES: usize = 4 << 20;

/// Throughput floor: UDP `sendmmsg`/`recvmmsg` on loopback.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpFloor;

impl Contender for UdpFloor {
    fn name(&self) -> &'static str {
        "udp-floor"
    }

    fn system(&self) -> &'static str {
        "kernel"
    }

    fn mode(&self) -> &'static str {
        "UDP sendmmsg/recvmmsg x64"
    }

    fn payload_bytes(&self, requested: usize) -> usize {
        requested.min(MAX_UDP_PAYLOAD)
    }
}

impl ThroughputContender for UdpFloor {
    fn baseline(&self) -> Option<ThroughputBaseline> {
        Some(ThroughputBaseline::Floor)
    }

    fn run_rx(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<RxReport> {
        let socket = bind_loopback()?;
        let fd = socket.as_raw_fd();
        let (buffer_bytes, forced) =
            sys::set_socket_buffer(fd, true, RECEIVE_BUFFER_BYTES).context("setting SO_RCVBUF")?;
        socket
            .set_read_timeout(Some(RECEIVE_TIMEOUT))
            .context("setting SO_RCVTIMEO")?;
        ready(&socket.local_addr().context("local address")?.to_string());

        let mut batch = RecvBatch::new(BATCH, spec.payload_bytes);
        let mut meter = Meter::new(spec.warmup, spec.duration);
        loop {
            match batch.recv(fd) {
                Ok(count) => {
                    let bytes: usize = (0..count).map(|index| batch.len(index)).sum();
                    if !meter.record(count as u64, bytes as u64) {
                        break;
                    }
                }
                Err(error) if timed_out(&error) => {
                    if !meter.idle()? {
                        break;
                    }
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error).context("recvmmsg"),
            }
        }
        let mut report = meter.report();
        report.extra.insert("batch".to_owned(), json!(BATCH));
        report
            .extra
            .insert("rcvbuf_bytes".to_owned(), json!(buffer_bytes));
        report
            .extra
            .insert("rcvbuf_forced".to_owned(), json!(forced));
        Ok(report)
    }

    fn run_tx(&self, spec: &ChildSpec) -> Result<TxReport> {
        let socket = bind_loopback()?;
        socket
            .connect(spec.endpoint()?)
            .context("connecting the UDP socket")?;
        let fd = socket.as_raw_fd();
        let (buffer_bytes, _) =
            sys::set_socket_buffer(fd, false, SEND_BUFFER_BYTES).context("setting SO_SNDBUF")?;
        let mut batch = SendBatch::new(BATCH, vec![0x5a; spec.payload_bytes]);
        let deadline = throughput::send_deadline(spec);
        let start = Instant::now();
        let mut sent = 0_u64;
        let mut refused = false;
        let mut now = start;
        while now < deadline {
            match batch.send(fd) {
                Ok(count) => sent += count as u64,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {}
                // The receiver is gone (an ICMP port unreachable came back): stop.
                Err(error) if error.kind() == ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                Err(error) => return Err(error).context("sendmmsg"),
            }
            now = Instant::now();
        }
        let mut extra = serde_json::Map::new();
        extra.insert("batch".to_owned(), json!(BATCH));
        extra.insert("sndbuf_bytes".to_owned(), json!(buffer_bytes));
        extra.insert("receiver_gone".to_owned(), json!(refused));
        Ok(TxReport {
            messages: sent,
            bytes: sent * spec.payload_bytes as u64,
            elapsed_ns: nanos(now - start),
            extra,
        })
    }
}

/// Latency floor: one UDP datagram each way on loopback.
#[derive(Clone, Copy, Debug)]
pub struct UdpPingPong {
    busy: bool,
}

impl UdpPingPong {
    /// Blocking sockets: each side sleeps in `recv` until the kernel wakes it.
    pub const fn blocking() -> Self {
        Self { busy: false }
    }

    /// Busy-polling: each side spins on `recv(MSG_DONTWAIT)`.
    pub const fn busy() -> Self {
        Self { busy: true }
    }

    const fn flags(self) -> libc::c_int {
        if self.busy { libc::MSG_DONTWAIT } else { 0 }
    }
}

impl Contender for UdpPingPong {
    fn name(&self) -> &'static str {
        if self.busy {
            "udp-busy"
        } else {
            "udp-blocking"
        }
    }

    fn system(&self) -> &'static str {
        "kernel"
    }

    fn mode(&self) -> &'static str {
        if self.busy {
            "UDP busy-poll (MSG_DONTWAIT spin)"
        } else {
            "UDP blocking"
        }
    }

    fn payload_bytes(&self, requested: usize) -> usize {
        requested.min(MAX_UDP_PAYLOAD)
    }
}

impl PingPongContender for UdpPingPong {
    fn baseline(&self) -> Option<LatencyBaseline> {
        Some(if self.busy {
            LatencyBaseline::FloorBusy
        } else {
            LatencyBaseline::FloorBlocking
        })
    }

    fn run_server(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<()> {
        let socket = bind_loopback()?;
        ready(&socket.local_addr().context("local address")?.to_string());
        let mut buffer = vec![0; 1 << 16];
        // The first datagram names the client; after it the socket is connected to it.
        let (length, client) = socket.recv_from(&mut buffer).context("first recv_from")?;
        if length == 0 {
            return Ok(());
        }
        socket.connect(client).context("connecting to the client")?;
        socket.send(&buffer[..length]).context("send")?;
        let fd = socket.as_raw_fd();
        loop {
            let length = match sys::recv(fd, &mut buffer, self.flags()) {
                Ok(length) => length,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    spin_or_yield(spec.shared_core);
                    continue;
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).context("recv"),
            };
            if length == 0 {
                return Ok(());
            }
            socket.send(&buffer[..length]).context("send")?;
        }
    }

    fn connect(&self, spec: &ChildSpec) -> Result<Box<dyn RoundTrip>> {
        let socket = bind_loopback()?;
        socket
            .connect(spec.endpoint()?)
            .context("connecting the UDP socket")?;
        if !self.busy {
            socket
                .set_read_timeout(Some(REPLY_TIMEOUT))
                .context("setting SO_RCVTIMEO")?;
        }
        Ok(Box::new(UdpRoundTrip {
            socket,
            buffer: vec![0; 1 << 16],
            flags: self.flags(),
            shared_core: spec.shared_core,
        }))
    }
}

/// The client side of [`UdpPingPong`].
#[derive(Debug)]
struct UdpRoundTrip {
    socket: UdpSocket,
    buffer: Vec<u8>,
    flags: libc::c_int,
    shared_core: bool,
}

impl RoundTrip for UdpRoundTrip {
    fn round_trip(&mut self, request: &[u8]) -> Result<()> {
        self.socket.send(request).context("send")?;
        let fd = self.socket.as_raw_fd();
        let mut spins = 0_u32;
        let mut spin_start = None;
        loop {
            match sys::recv(fd, &mut self.buffer, self.flags) {
                // A late echo of an earlier request is skipped.
                Ok(length) if echo_matches(request, &self.buffer[..length]) => return Ok(()),
                Ok(_) => {}
                Err(error) if self.flags == 0 && timed_out(&error) => {
                    bail!("no reply within {REPLY_TIMEOUT:?}")
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    spins = spins.wrapping_add(1);
                    if spins % 65_536 == 0 {
                        // Read the clock rarely, and only once the reply is late.
                        let now = Instant::now();
                        if now - *spin_start.get_or_insert(now) > REPLY_TIMEOUT {
                            bail!("no reply within {REPLY_TIMEOUT:?}");
                        }
                    }
                    spin_or_yield(self.shared_core);
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error).context("recv"),
            }
        }
    }

    fn stop(&mut self) -> Result<()> {
        self.socket.send(&[]).context("sending the stop datagram")?;
        Ok(())
    }
}

/// One empty turn of a busy-poll loop: a spin hint, or giving the core to the peer when both
/// processes share it.
fn spin_or_yield(shared_core: bool) {
    if shared_core {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn bind_loopback() -> Result<UdpSocket> {
    UdpSocket::bind("127.0.0.1:0").context("binding a UDP socket on 127.0.0.1")
}

/// `SO_RCVTIMEO` expiry shows as `EAGAIN` (`WouldBlock`) on Linux.
fn timed_out(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

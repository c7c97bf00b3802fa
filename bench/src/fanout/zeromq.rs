//! Baseline B: ZeroMQ PUB/SUB over TCP on 127.0.0.1, libzmq through the `zmq` crate.
//!
//! The publisher is an XPUB socket, ZeroMQ's PUB that also hands the application its
//! subscribers' subscriptions: the publisher counts them so that it starts only once all N
//! receivers are subscribed (a plain PUB drops whatever it publishes before a subscription has
//! arrived). It sets `ZMQ_XPUB_NODROP`, so that a full subscriber queue blocks the publisher
//! instead of dropping messages: the comparison is between reliable fan-outs, each paced by its
//! slowest receiver. Blocking sends wait in libzmq (100 ms at most each), not in a spin.
//! High-water marks are as in the throughput program (about 32 MiB of messages).

use anyhow::Result;

use super::side::{FanoutSpec, Publish, Receive};

/// Binds an XPUB socket; ready at once (receivers connect to it).
pub(super) fn publisher(spec: &FanoutSpec) -> Result<(Box<dyn Publish>, String)> {
    imp::publisher(spec)
}

/// Connects a SUB socket to the publisher and subscribes to everything.
pub(super) fn receiver(spec: &FanoutSpec) -> Result<(Box<dyn Receive>, String)> {
    imp::receiver(spec)
}

/// Why ZeroMQ cannot run here, if it cannot.
pub(super) fn available() -> Result<(), String> {
    imp::available()
}

#[cfg(feature = "zeromq")]
mod imp {
    use std::ffi::{c_int, c_void};

    use anyhow::{Context as _, Result, anyhow, bail};
    use serde_json::{Value, json};

    use super::super::side::{FanoutSpec, Publish, Receive};

    /// `ZMQ_XPUB_NODROP` from `zmq.h` (libzmq 4.1 and later); the `zmq` crate 0.9 has no setter.
    const ZMQ_XPUB_NODROP: c_int = 69;

    /// How long one blocking send waits for room before the loop gets control back.
    const SEND_TIMEOUT_MS: i32 = 100;

    /// How long an idle poll waits.
    const POLL_TIMEOUT_MS: i64 = 10;

    /// Messages a receiver takes per poll at most.
    const RECEIVE_BATCH: usize = 1024;

    // The `zmq` crate links libzmq; this declares the one function it does not wrap for us.
    // SAFETY: the signature is libzmq's `int zmq_setsockopt(void *, int, const void *, size_t)`.
    unsafe extern "C" {
        fn zmq_setsockopt(
            socket: *mut c_void,
            option: c_int,
            value: *const c_void,
            length: usize,
        ) -> c_int;
    }

    pub(super) fn available() -> Result<(), String> {
        Ok(())
    }

    pub(super) fn publisher(spec: &FanoutSpec) -> Result<(Box<dyn Publish>, String)> {
        let context = zmq::Context::new();
        let mut socket = context
            .socket(zmq::XPUB)
            .context("creating an XPUB socket")?;
        let hwm = high_water_mark(spec.payload_bytes);
        socket.set_sndhwm(hwm).context("ZMQ_SNDHWM")?;
        socket.set_xpub_verbose(true).context("ZMQ_XPUB_VERBOSE")?;
        let yes: c_int = 1;
        // SAFETY: the socket pointer is live (we own the socket) and the value is a c_int that
        // lives across the call, with its size passed.
        let result = unsafe {
            zmq_setsockopt(
                socket.as_mut_ptr(),
                ZMQ_XPUB_NODROP,
                (&raw const yes).cast(),
                size_of::<c_int>(),
            )
        };
        if result != 0 {
            bail!("ZMQ_XPUB_NODROP: {}", std::io::Error::last_os_error());
        }
        socket
            .set_sndtimeo(SEND_TIMEOUT_MS)
            .context("ZMQ_SNDTIMEO")?;
        socket.set_linger(0).context("ZMQ_LINGER")?;
        socket
            .bind("tcp://127.0.0.1:*")
            .context("binding tcp://127.0.0.1:*")?;
        let endpoint = socket
            .get_last_endpoint()
            .context("ZMQ_LAST_ENDPOINT")?
            .map_err(|raw| anyhow!("endpoint is not UTF-8: {raw:?}"))?;
        Ok((
            Box::new(ZmqPublisher {
                socket,
                subscriptions: 0,
                receivers: spec.receivers,
                hwm,
                _context: context,
            }),
            endpoint,
        ))
    }

    pub(super) fn receiver(spec: &FanoutSpec) -> Result<(Box<dyn Receive>, String)> {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::SUB).context("creating a SUB socket")?;
        let hwm = high_water_mark(spec.payload_bytes);
        socket.set_rcvhwm(hwm).context("ZMQ_RCVHWM")?;
        socket.set_linger(0).context("ZMQ_LINGER")?;
        socket.set_subscribe(b"").context("ZMQ_SUBSCRIBE")?;
        socket
            .connect(spec.publisher_endpoint()?)
            .context("connecting the SUB socket")?;
        Ok((
            Box::new(ZmqReceiver {
                socket,
                message: zmq::Message::new(),
                park: spec.parks(),
                hwm,
                _context: context,
            }),
            "subscribed".to_owned(),
        ))
    }

    /// The publishing side.
    struct ZmqPublisher {
        // Dropped before the context, which waits for its sockets to close.
        socket: zmq::Socket,
        subscriptions: usize,
        receivers: usize,
        hwm: i32,
        _context: zmq::Context,
    }

    impl ZmqPublisher {
        /// Reads the subscription messages that arrived (`\x01` + topic: subscribe).
        fn drain_subscriptions(&mut self) -> Result<()> {
            loop {
                match self.socket.recv_bytes(zmq::DONTWAIT) {
                    Ok(message) if message.first() == Some(&1) => self.subscriptions += 1,
                    Ok(message) if message.first() == Some(&0) => {
                        self.subscriptions = self.subscriptions.saturating_sub(1);
                    }
                    Ok(_) | Err(zmq::Error::EINTR) => {}
                    Err(zmq::Error::EAGAIN) => return Ok(()),
                    Err(error) => return Err(error).context("reading subscriptions"),
                }
            }
        }
    }

    impl Publish for ZmqPublisher {
        fn offer(&mut self, payload: &[u8]) -> Result<bool> {
            match self.socket.send(payload, 0) {
                Ok(()) => Ok(true),
                // The send timeout passed with a subscriber's queue still full, or a signal.
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => Ok(false),
                Err(error) => Err(error).context("zmq send"),
            }
        }

        fn cycle(&mut self, idle: bool) -> Result<usize> {
            if idle {
                let mut items = [self.socket.as_poll_item(zmq::POLLIN)];
                match zmq::poll(&mut items, POLL_TIMEOUT_MS) {
                    Ok(_) | Err(zmq::Error::EINTR) => {}
                    Err(error) => return Err(error).context("zmq poll"),
                }
            }
            // libzmq's I/O thread does the sending; nothing is left for this thread.
            self.drain_subscriptions().map(|()| 0)
        }

        fn ready_to_start(&mut self) -> Result<bool> {
            self.drain_subscriptions()?;
            Ok(self.subscriptions >= self.receivers)
        }

        fn report(&mut self) -> Value {
            json!({
                "libzmq": crate::zeromq::version(),
                "hwm": self.hwm,
                "subscriptions": self.subscriptions,
                "nodrop": true,
            })
        }
    }

    /// The receiving side.
    struct ZmqReceiver {
        socket: zmq::Socket,
        message: zmq::Message,
        park: bool,
        hwm: i32,
        _context: zmq::Context,
    }

    impl Receive for ZmqReceiver {
        fn poll(&mut self, idle: bool, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
            if idle && self.park {
                let mut items = [self.socket.as_poll_item(zmq::POLLIN)];
                match zmq::poll(&mut items, POLL_TIMEOUT_MS) {
                    Ok(_) | Err(zmq::Error::EINTR) => {}
                    Err(error) => return Err(error).context("zmq poll"),
                }
            }
            let mut count = 0;
            while count < RECEIVE_BATCH {
                match self.socket.recv(&mut self.message, zmq::DONTWAIT) {
                    Ok(()) => {
                        on_message(&self.message);
                        count += 1;
                    }
                    Err(zmq::Error::EAGAIN) => break,
                    Err(zmq::Error::EINTR) => {}
                    Err(error) => return Err(error).context("zmq recv"),
                }
            }
            Ok(count)
        }

        fn report(&mut self) -> Value {
            json!({ "libzmq": crate::zeromq::version(), "hwm": self.hwm })
        }
    }

    /// About 32 MiB of messages, between 1,000 (ZeroMQ's default) and 100,000 messages.
    fn high_water_mark(payload_bytes: usize) -> i32 {
        let messages = (32 << 20) / payload_bytes.max(1);
        i32::try_from(messages.clamp(1_000, 100_000)).unwrap_or(1_000)
    }
}

#[cfg(not(feature = "zeromq"))]
mod imp {
    use anyhow::{Result, bail};

    use super::super::side::{FanoutSpec, Publish, Receive};

    const MISSING: &str = "built without the `zeromq` feature (needs libzmq3-dev and pkg-config)";

    pub(super) fn available() -> Result<(), String> {
        Err(MISSING.to_owned())
    }

    pub(super) fn publisher(_: &FanoutSpec) -> Result<(Box<dyn Publish>, String)> {
        bail!(MISSING)
    }

    pub(super) fn receiver(_: &FanoutSpec) -> Result<(Box<dyn Receive>, String)> {
        bail!(MISSING)
    }
}

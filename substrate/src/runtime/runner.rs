//! Starting a shard, whatever it runs: on the application's thread (invoker mode) or on a
//! pinned thread of its own. Shared by the session [`Node`](super::Node) and the generic
//! [`Host`](super::host::Host).

use std::net::SocketAddr;

use super::{NodeError, Threading};

/// A shard of any driver and protocol, as its owner runs it.
pub(crate) trait Run {
    fn do_work(&mut self, may_wait: bool, last_work: usize) -> usize;
    fn should_stop(&self) -> bool;
    fn local_addr(&self) -> Option<SocketAddr>;
}

/// Where a shard runs.
pub(crate) enum Runner {
    /// The application's thread calls `do_work` (invoker mode).
    Inline(Box<dyn Run + Send>),
    /// A thread of its own, joined by [`Runner::join`].
    Thread(Option<std::thread::JoinHandle<()>>),
}

impl Runner {
    /// Joins a shard thread (after its owner asked it to stop).
    pub(crate) fn join(&mut self) {
        if let Self::Thread(join) = self {
            if let Some(j) = join.take() {
                let _ = j.join();
            }
        }
    }
}

/// Builds a shard with `build` and starts it: inline, or on a thread named `name` pinned to
/// `core` that runs duty cycles until the shard is asked to stop. Returns the runner and the
/// shard's bound address (`addr` if the driver does not say).
pub(crate) fn start<B>(
    threading: Threading,
    name: String,
    core: Option<core_affinity::CoreId>,
    addr: SocketAddr,
    build: B,
) -> Result<(Runner, SocketAddr), NodeError>
where
    B: FnOnce() -> Result<Box<dyn Run + Send>, NodeError> + Send + 'static,
{
    match threading {
        Threading::Invoker => {
            let shard = build()?;
            let locator = shard.local_addr().unwrap_or(addr);
            Ok((Runner::Inline(shard), locator))
        }
        Threading::Dedicated => {
            let (tx, rx) = std::sync::mpsc::channel();
            let join = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    match build() {
                        Ok(mut shard) => {
                            let _ = tx.send(Ok(shard.local_addr().unwrap_or(addr)));
                            let mut last = 1;
                            while !shard.should_stop() {
                                last = shard.do_work(true, last);
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })
                .map_err(NodeError::Thread)?;
            match rx.recv() {
                Ok(Ok(a)) => Ok((Runner::Thread(Some(join)), a)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(NodeError::Thread(std::io::Error::other(
                    "shard thread ended during start-up",
                ))),
            }
        }
    }
}

//! Any sans-IO protocol on the engine's shards: the engine's protocol interface for layers
//! above `substrate`.
//!
//! A [`Service`] is a [`Protocol`] plus how it talks to its application: commands in, and
//! whatever rings it shares with the application (offers in, deliveries out). A [`Host`] runs
//! one instance per shard, each with its own driver, socket, clock and seeded RNG, on a pinned
//! thread or in invoker mode, exactly as [`Node`](super::Node) runs sessions. The host knows
//! nothing of what the protocol is: `group-comm` runs its group stack here without the engine
//! knowing groups.
//!
//! # The duty cycle
//! 1. drain commands into the service, then [`Service::service`] (move offers in);
//! 2. fire the protocol's due timer;
//! 3. drain `poll_transmit` into driver slots (with gathered parts) and events into the
//!    application's event ring;
//! 4. one driver poll (submit, reap, receive; wait there only if idle and nothing is pending);
//! 5. each datagram to the protocol, its events out, [`Service::service`] again (deliveries).
//!
//! Nothing here takes a lock on the data path: application and shard meet only in lock-free
//! SPSC rings and relaxed counters. The counters snapshot is published with `try_lock`, so the
//! shard never waits for a reader.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};

use super::clock::{Clock, os_seed};
use super::driver::fault::{FaultConfig, FaultDriver};
use super::driver::poll::PollDriver;
use super::driver::{Driver, DriverConfig, DriverKind, DriverStats, SocketId, Wait, Waker, select};
use super::idle::{IdleStep, IdleStrategy, Idler};
use super::runner::{self, Run, Runner};
use super::shard::Shared;
use super::{NodeError, Threading};
use crate::id::Locator;
use crate::proto::Protocol;
use crate::rand::Rng;
use crate::sync::spsc::{self, Consumer, Full, Producer};
use crate::time::{Duration, Instant};

/// Most commands taken per cycle.
const COMMANDS_PER_CYCLE: usize = 64;
/// Most datagrams drained from the protocol per cycle.
const TRANSMITS_PER_CYCLE: usize = 256;
/// Most events held for an application that does not read them; more are dropped and counted.
const MAX_OVERFLOW_EVENTS: usize = 65_536;
/// How often counters are published for readers on other threads.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

/// A protocol the engine can host on a shard, with its application interface.
///
/// The host drives the [`Protocol`] by its contract and calls the hooks below from the shard's
/// thread. Everything a service shares with the application must be lock-free (the rings of
/// [`crate::sync::spsc`]) or published without waiting.
pub trait Service: Protocol + Send + 'static
where
    Self::Event: Send + 'static,
{
    /// What the application asks of the shard (through [`Host::command`]).
    type Command: Send + 'static;

    /// Carries out one command.
    fn command(&mut self, now: Instant, command: Self::Command, rng: &mut Rng);

    /// Moves work between the protocol and the rings the service shares with the application:
    /// offers in, deliveries out. Called twice per cycle; returns the work done (0 = none).
    fn service(&mut self, now: Instant, rng: &mut Rng) -> usize;

    /// Whether the application left work in a shared ring that [`service`](Self::service)
    /// would take (checked before the shard parks, after it announced it would).
    fn has_pending(&mut self) -> bool;

    /// Publishes counters for readers on other threads (every 10 ms or so). Must not wait.
    fn publish(&mut self, now: Instant);
}

/// What a shard reports besides its service's events.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Hosted<E> {
    /// An event of the service.
    Event(E),
    /// The shard's driver failed; the shard goes on trying.
    DriverFailed {
        /// Why.
        error: String,
    },
}

/// What a service is built from, on its shard's thread once the socket is bound.
#[derive(Debug)]
pub struct ShardContext {
    /// The shard's index.
    pub index: usize,
    /// Where its socket is bound.
    pub locator: SocketAddr,
    /// Its RNG, seeded for this shard (fork it for the service's own streams).
    pub rng: Rng,
    /// Wakes the shard after pushing to a ring it reads (hand it to the application side).
    pub wake: ShardWake,
}

/// Wakes one shard if it is parked in its driver; cheap to clone, for application-side rings.
#[derive(Clone, Debug)]
pub struct ShardWake {
    shared: Arc<Shared>,
    waker: Option<Waker>,
}

impl ShardWake {
    pub(crate) fn new(shared: Arc<Shared>, waker: Option<Waker>) -> Self {
        Self { shared, waker }
    }

    /// To be called after pushing to (or popping from) a ring the shard reads (or fills).
    pub fn wake(&self) {
        self.shared.wake_if_parked(self.waker.as_ref());
    }
}

/// How a [`Host`] is built.
#[derive(Clone, Debug)]
pub struct HostBuilder {
    bind: SocketAddr,
    shards: usize,
    driver: Option<DriverKind>,
    idle: IdleStrategy,
    threading: Threading,
    driver_config: DriverConfig,
    faults: Option<FaultConfig>,
    seed: Option<u64>,
    ring_capacity: usize,
    pin: bool,
    name: String,
}

impl Default for HostBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            shards: 1,
            driver: None,
            idle: IdleStrategy::default(),
            threading: Threading::default(),
            driver_config: DriverConfig::default(),
            faults: None,
            seed: None,
            ring_capacity: 4096,
            pin: true,
            name: "phyla".into(),
        }
    }
}

impl HostBuilder {
    /// Binds shard `i` to `addr`'s port plus `i` (or any free port if it is 0).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How many shards (default 1).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n.max(1);
        self
    }

    /// Forces a driver (default: `PHYLA_DRIVER`, then the probe).
    pub fn driver(mut self, kind: Option<DriverKind>) -> Self {
        self.driver = kind;
        self
    }

    /// How idle shards wait.
    pub fn idle(mut self, idle: IdleStrategy) -> Self {
        self.idle = idle;
        self
    }

    /// Dedicated shard threads, or invoker mode.
    pub fn threading(mut self, threading: Threading) -> Self {
        self.threading = threading;
        self
    }

    /// Driver sizes and switches.
    pub fn driver_config(mut self, config: DriverConfig) -> Self {
        self.driver_config = config;
        self
    }

    /// Injects faults (tests).
    pub fn faults(mut self, faults: Option<FaultConfig>) -> Self {
        self.faults = faults;
        self
    }

    /// Seeds the shards' RNGs (default: from the kernel).
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// Capacity of the command and event rings.
    pub fn ring_capacity(mut self, n: usize) -> Self {
        self.ring_capacity = n.max(2);
        self
    }

    /// Whether shard threads are pinned to cores (default yes).
    pub fn pin(mut self, yes: bool) -> Self {
        self.pin = yes;
        self
    }

    /// Names the shard threads (`NAME-shard-I`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// How many shards will be started.
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// Starts the shards; `make` builds each shard's service on that shard's thread, once its
    /// socket is bound (an `Err` from it fails the build with [`NodeError::Service`]).
    ///
    /// # Errors
    /// [`NodeError`] if the driver cannot be chosen or a shard cannot start.
    pub fn build<S, F>(self, make: F) -> Result<Host<S>, NodeError>
    where
        S: Service,
        S::Event: Send + 'static,
        F: Fn(ShardContext) -> Result<S, String> + Clone + Send + 'static,
    {
        let selection = select(self.driver).map_err(NodeError::Selection)?;
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut links = Vec::with_capacity(self.shards);
        for i in 0..self.shards {
            let addr = if self.bind.port() == 0 {
                self.bind
            } else {
                SocketAddr::new(self.bind.ip(), self.bind.port().wrapping_add(i as u16))
            };
            let seed = self
                .seed
                .map_or_else(os_seed, |s| s ^ (i as u64).wrapping_mul(0x9e37_79b9));
            let (cmd_tx, cmd_rx) = spsc::channel(self.ring_capacity);
            let (ev_tx, ev_rx) = spsc::channel(self.ring_capacity);
            let shared = Arc::new(Shared::new());
            let stats = Arc::new(Mutex::new(DriverStats::default()));
            let events_dropped = Arc::new(AtomicU64::new(0));
            let waker = match self.threading {
                Threading::Dedicated => Some(Waker::new()?),
                Threading::Invoker => None,
            };
            let plan = Plan {
                index: i,
                kind: selection.kind,
                addr,
                seed,
                idle: self.idle,
                config: self.driver_config.clone(),
                faults: self.faults.clone(),
                commands: cmd_rx,
                events: ev_tx,
                wake: ShardWake {
                    shared: shared.clone(),
                    waker: waker.clone(),
                },
                stats: stats.clone(),
                events_dropped: events_dropped.clone(),
                make: make.clone(),
            };
            let core = (self.pin && self.threading == Threading::Dedicated)
                .then(|| cores.get(i % cores.len().max(1)).copied())
                .flatten();
            let (host, locator) = runner::start(
                self.threading,
                format!("{}-shard-{i}", self.name),
                core,
                addr,
                move || plan.build(),
            )?;
            links.push(Link {
                commands: cmd_tx,
                events: ev_rx,
                shared,
                waker,
                runner: host,
                locator,
                stats,
                events_dropped,
                last_work: 1,
            });
        }
        Ok(Host {
            driver: selection.kind,
            driver_reason: selection.reason,
            shards: links,
            event_turn: 0,
        })
    }
}

/// Shards running one [`Service`] each. Dropping the host stops the shards and joins their
/// threads.
pub struct Host<S: Service>
where
    S::Event: Send + 'static,
{
    driver: DriverKind,
    driver_reason: String,
    shards: Vec<Link<S>>,
    event_turn: usize,
}

impl<S: Service> std::fmt::Debug for Host<S>
where
    S::Event: Send + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("driver", &self.driver)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

struct Link<S: Service>
where
    S::Event: Send + 'static,
{
    commands: Producer<S::Command>,
    events: Consumer<Hosted<S::Event>>,
    shared: Arc<Shared>,
    waker: Option<Waker>,
    runner: Runner,
    locator: SocketAddr,
    stats: Arc<Mutex<DriverStats>>,
    events_dropped: Arc<AtomicU64>,
    last_work: usize,
}

impl<S: Service> Drop for Link<S>
where
    S::Event: Send + 'static,
{
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = &self.waker {
            w.wake();
        }
        self.runner.join();
    }
}

impl<S: Service> Host<S>
where
    S::Event: Send + 'static,
{
    /// A builder with the defaults: loopback, any port, one shard, dedicated threads.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The driver in use, and why it was chosen.
    pub fn driver(&self) -> (DriverKind, &str) {
        (self.driver, &self.driver_reason)
    }

    /// How many shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Where each shard's socket is bound.
    pub fn locators(&self) -> Vec<SocketAddr> {
        self.shards.iter().map(|s| s.locator).collect()
    }

    /// Sends `command` to shard `shard`.
    ///
    /// # Errors
    /// `Err(command)` if the shard's command ring is full (it is not keeping up: retry) or
    /// there is no such shard.
    pub fn command(&mut self, shard: usize, command: S::Command) -> Result<(), Full<S::Command>> {
        let Some(link) = self.shards.get_mut(shard) else {
            return Err(Full(command));
        };
        link.commands.try_push(command)?;
        link.shared.wake_if_parked(link.waker.as_ref());
        Ok(())
    }

    /// The next event of any shard, with the shard's index.
    pub fn poll_event(&mut self) -> Option<(usize, Hosted<S::Event>)> {
        let n = self.shards.len();
        for k in 0..n {
            let i = (self.event_turn + k) % n;
            let link = &mut self.shards[i];
            if let Some(e) = link.events.try_pop() {
                // The shard may hold events for want of room in the ring.
                link.shared.wake_if_parked(link.waker.as_ref());
                self.event_turn = (i + 1) % n;
                return Some((i, e));
            }
        }
        None
    }

    /// Invoker mode: one duty cycle of every shard on this thread; the work done (0 = idle).
    /// Does nothing for dedicated shards.
    pub fn invoke(&mut self) -> usize {
        self.run_inline(false)
    }

    /// Invoker mode: like [`invoke`](Self::invoke), but an idle shard may wait in its driver as
    /// its idle strategy says.
    pub fn invoke_idle(&mut self) -> usize {
        self.run_inline(true)
    }

    fn run_inline(&mut self, may_wait: bool) -> usize {
        let mut work = 0;
        for s in &mut self.shards {
            if let Runner::Inline(shard) = &mut s.runner {
                let last = if may_wait { s.last_work } else { 1 };
                s.last_work = shard.do_work(may_wait, last);
                work += s.last_work;
            }
        }
        work
    }

    /// Events dropped because the application did not read them for a long time (all shards).
    pub fn events_dropped(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.events_dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Wakes shard `shard` if it is parked: for application-side rings it reads.
    pub fn wake_handle(&self, shard: usize) -> Option<ShardWake> {
        self.shards.get(shard).map(|s| ShardWake {
            shared: s.shared.clone(),
            waker: s.waker.clone(),
        })
    }

    /// The driver counters of shard `shard`, as last published (every 10 ms or so).
    pub fn driver_stats(&self, shard: usize) -> DriverStats {
        self.shards
            .get(shard)
            .and_then(|s| s.stats.lock().ok().map(|g| *g))
            .unwrap_or_default()
    }
}

/// Everything a shard is built from.
struct Plan<S: Service, F>
where
    S::Event: Send + 'static,
{
    index: usize,
    kind: DriverKind,
    addr: SocketAddr,
    seed: u64,
    idle: IdleStrategy,
    config: DriverConfig,
    faults: Option<FaultConfig>,
    commands: Consumer<S::Command>,
    events: Producer<Hosted<S::Event>>,
    wake: ShardWake,
    stats: Arc<Mutex<DriverStats>>,
    events_dropped: Arc<AtomicU64>,
    make: F,
}

impl<S, F> Plan<S, F>
where
    S: Service,
    S::Event: Send + 'static,
    F: Fn(ShardContext) -> Result<S, String> + Send + 'static,
{
    fn build(self) -> Result<Box<dyn Run + Send>, NodeError> {
        match self.kind {
            DriverKind::Poll => {
                let d = PollDriver::new(&self.config)?;
                self.with_faults(d)
            }
            DriverKind::Uring => {
                let d = super::driver::uring::UringDriver::new(&self.config)?;
                self.with_faults(d)
            }
        }
    }

    fn with_faults<D: Driver + Send + 'static>(
        self,
        driver: D,
    ) -> Result<Box<dyn Run + Send>, NodeError> {
        match self.faults.clone() {
            Some(f) => self.start(FaultDriver::new(driver, f)),
            None => self.start(driver),
        }
    }

    fn start<D: Driver + Send + 'static>(
        self,
        mut driver: D,
    ) -> Result<Box<dyn Run + Send>, NodeError> {
        if let Some(w) = &self.wake.waker {
            driver.watch(w)?;
        }
        let socket = driver.bind(self.addr)?;
        let locator = driver.local_addr(socket).unwrap_or(self.addr);
        let mut rng = Rng::with_seed(self.seed);
        let service = (self.make)(ShardContext {
            index: self.index,
            locator,
            rng: rng.fork(0x484f_5354),
            wake: self.wake.clone(),
        })
        .map_err(NodeError::Service)?;
        let clock = Clock::new();
        Ok(Box::new(HostShard {
            driver,
            socket,
            service,
            clock,
            rng,
            idler: Idler::new(self.idle),
            commands: self.commands,
            events: self.events,
            overflow: std::collections::VecDeque::new(),
            shared: self.wake.shared,
            stats: self.stats,
            next_timeout: None,
            published: clock.now(),
            events_dropped: self.events_dropped,
        }))
    }
}

struct HostShard<D: Driver, S: Service>
where
    S::Event: Send + 'static,
{
    driver: D,
    socket: SocketId,
    service: S,
    clock: Clock,
    rng: Rng,
    idler: Idler,
    commands: Consumer<S::Command>,
    events: Producer<Hosted<S::Event>>,
    overflow: std::collections::VecDeque<Hosted<S::Event>>,
    shared: Arc<Shared>,
    stats: Arc<Mutex<DriverStats>>,
    next_timeout: Option<Instant>,
    published: Instant,
    events_dropped: Arc<AtomicU64>,
}

impl<D: Driver, S: Service> Run for HostShard<D, S>
where
    S::Event: Send + 'static,
{
    fn do_work(&mut self, may_wait: bool, last_work: usize) -> usize {
        let mut now = self.clock.now();
        let mut work = 0;
        while work < COMMANDS_PER_CYCLE {
            let Some(c) = self.commands.try_pop() else {
                break;
            };
            work += 1;
            self.service.command(now, c, &mut self.rng);
        }
        work += self.service.service(now, &mut self.rng);
        if self.next_timeout.is_some_and(|t| now >= t) {
            self.service.handle_timeout(now, &mut self.rng);
            work += 1;
        }
        work += self.drain(now);

        let wait = if may_wait && work == 0 && last_work == 0 {
            let until = self.next_timeout.map(|t| t.saturating_duration_since(now));
            match self.idler.step(0, until) {
                IdleStep::Spin => Wait::No,
                IdleStep::Yield => {
                    std::thread::yield_now();
                    Wait::No
                }
                IdleStep::Wait(d) => self.prepare_to_park(d),
            }
        } else {
            self.idler.step(work, None);
            Wait::No
        };

        let service = &mut self.service;
        let rng = &mut self.rng;
        let clock = &self.clock;
        let mut received = 0usize;
        let polled = self.driver.poll(wait, |r| {
            // One clock read per batch: the datagrams of one poll arrived together.
            if received == 0 {
                now = clock.now();
            }
            received += 1;
            service.handle_datagram(now, Locator::Udp(r.from), &r.datagram, rng);
        });
        if matches!(wait, Wait::For(_)) {
            self.shared.parked.store(false, Ordering::Relaxed);
        }
        match polled {
            Ok(n) => work += n,
            Err(e) => self.emit(Hosted::DriverFailed {
                error: e.to_string(),
            }),
        }
        if received > 0 {
            work += self.drain_events();
        }
        work += self.service.service(now, &mut self.rng);
        self.next_timeout = self.service.poll_timeout();
        if now.saturating_duration_since(self.published) >= PUBLISH_EVERY {
            self.published = now;
            self.service.publish(now);
            if let Ok(mut s) = self.stats.try_lock() {
                *s = self.driver.stats();
            }
        }
        work
    }

    fn should_stop(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.driver.local_addr(self.socket)
    }
}

impl<D: Driver, S: Service> HostShard<D, S>
where
    S::Event: Send + 'static,
{
    /// Says the shard is about to wait, then checks that nothing arrived meanwhile (the same
    /// handshake as the session shard's: a SeqCst fence on each side).
    fn prepare_to_park(&mut self, d: Duration) -> Wait {
        self.shared.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let pending = !self.commands.is_empty()
            || self.service.has_pending()
            || (!self.overflow.is_empty() && self.events.has_room());
        if pending {
            self.shared.parked.store(false, Ordering::Relaxed);
            Wait::No
        } else {
            Wait::For(d)
        }
    }

    /// Transmits into driver slots, then events out.
    fn drain(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while n < TRANSMITS_PER_CYCLE {
            let Some((slot, buf)) = self.driver.tx_acquire() else {
                break;
            };
            match self.service.poll_transmit(now, buf) {
                Some(t) => {
                    let Locator::Udp(to) = t.destination;
                    self.driver
                        .send_gather(self.socket, to, slot, t.len, t.gather);
                    n += 1;
                }
                None => {
                    self.driver.tx_abandon(slot);
                    break;
                }
            }
        }
        n + self.drain_events()
    }

    fn drain_events(&mut self) -> usize {
        let mut n = 0;
        while let Some(e) = self.service.poll_event() {
            n += 1;
            self.emit(Hosted::Event(e));
        }
        while let Some(e) = self.overflow.pop_front() {
            if let Err(full) = self.events.try_push(e) {
                self.overflow.push_front(full.0);
                break;
            }
        }
        n
    }

    fn emit(&mut self, e: Hosted<S::Event>) {
        if self.overflow.is_empty() {
            if let Err(full) = self.events.try_push(e) {
                self.overflow.push_back(full.0);
            }
        } else if self.overflow.len() < MAX_OVERFLOW_EVENTS {
            self.overflow.push_back(e);
        } else {
            // The application has not read events for a long time: drop, and count it.
            self.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

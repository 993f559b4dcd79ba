//! The manager: the budget, the replacement policy, the background thread,
//! synchronous reclaim and statistics.
//!
//! Owns: the [`Table`] of headers (under a parking_lot mutex), the epoch
//! [`Collector`] that protects headers scanned outside that lock, and the
//! background thread. One reclaim decision, [`Core::reclaim`], serves the
//! thread, [`Manager::reclaim`] and (later) direct reclaim and a
//! cross-process coordinator alike.
//!
//! Threads: the manager thread runs [`Core::run_once`] whenever the wake hook
//! fires (a new allocation pushed the arena over its limit, dropped headers
//! piled up) and, while pins keep it over the limit, on a backing-off timer;
//! otherwise it sleeps. It holds the arena weakly, so it lives while its
//! [`Manager`] or any handle lives, and it never blocks process exit.
//!
//! Panics: a panic in an iteration of the manager thread (a bug: nothing in
//! a pass panics by design) is caught in [`run`], counted in
//! [`Stats::manager_panics`], and the same thread carries on after a short
//! back-off (5 ms, doubling to 1 s while iterations keep panicking) with a
//! fresh [`Pressure`] (files re-read, notifications re-armed) and fresh
//! timers. The unwind released whatever the pass held: the table lock
//! (parking_lot unlocks on unwind and never poisons), the epoch guard
//! (unpinned), the fork gate (a read guard) and the arena; threads waiting
//! in direct reclaim are released. Continuing is sound because a pass may be
//! abandoned at any point without breaking what the `unsafe` code relies on
//! (table INV-1, state INV-1/3/4):
//!
//! - retiring a header is ordered "forget it in the policy, empty its slot,
//!   defer its free through the epoch", so an unwind between two steps
//!   leaves it in its slot (a later scan retires it) or leaks it; it is
//!   never freed twice, nor while the table still holds it;
//! - a victim is claimed by one CAS that marks it discarded, so an unwind
//!   between claim and release leaves it discarded with its bytes leaked
//!   (still counted in `discardable_bytes`): its owner sees `None` and never
//!   frees them;
//! - an unwind inside a policy method can leave the policy tracking the
//!   wrong ids (table INV-2), which misorders or skips victims but cannot
//!   discard a pinned allocation: every claim is a `try_discard` on a live
//!   header;
//! - headers drained from the arena's intake and not yet inserted are lost
//!   to the table: never reclaimed, their owners free their bytes (a leak of
//!   headers only).
//!
//! So the worst outcome of a panic is a leak, and a thread that stopped
//! instead would leak every later reclaim. Restarting the thread (as after a
//! fork, through `thread_gen`) would not do better: the restart waits for the
//! next call into the manager, and meanwhile nobody answers the arena's
//! wake-ups or direct reclaim. (With `panic = "abort"` none of this applies.)
//!
//! Must never: be reached from the global allocator's path, or hold the
//! table lock across a system call.

mod builder;
mod handles;
pub(crate) mod sink;
mod stats;
pub(crate) mod table;

use core::ptr::NonNull;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crossbeam_epoch::{Collector, LocalHandle};

use crate::pressure::{Pressure, PressureConfig, Reading, Signal, SignalReport};

pub use self::builder::{ManagerBuilder, ReclaimMode, ThreadPriority};
use self::sink::{DiscardSink, Notices, Sinks};
pub use self::stats::Stats;
use self::table::Table;
use crate::fork;
use crate::handle::arena::{Arena, Wake};
use crate::handle::header::Header;
use crate::sync::{AtomicUsize, Mutex, Ordering::Relaxed};

/// Victims claimed per table-lock acquisition.
const BATCH: usize = 64;
/// First retry delay while pins keep the arena over its limit.
const RETRY_MIN: Duration = Duration::from_millis(5);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How soon the thread retries discard notices a sink could not apply.
const SINK_RETRY: Duration = Duration::from_millis(10);

/// A discardable-memory manager: a budget, a replacement policy, the
/// pressure signals and the thread that acts on them. Cheap to clone (one
/// `Arc`).
///
/// ```
/// use discardable::{Discardable, Manager, Policy};
///
/// let manager = Manager::builder().policy(Policy::Lru).limit(64 << 20).start()?;
/// let cached = Discardable::from_slice_in(&[1u64, 2, 3], &manager);
/// assert_eq!(manager.stats().allocations, 1);
/// assert_eq!(manager.reclaim(usize::MAX), cached.cost());
/// assert!(cached.upgrade().is_none());
/// # Ok::<(), discardable::Error>(())
/// ```
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    arena: Arc<Arena>,
    core: Arc<Core>,
}

/// The manager state the thread shares: everything but the arena.
pub(crate) struct Core {
    table: Mutex<Table>,
    collector: Collector,
    limit: usize,
    pinned_bytes: AtomicUsize,
    over_limit_bytes: AtomicUsize,
    /// Reclaims triggered by the manager's own limit.
    limit_reclaims: std::sync::atomic::AtomicU64,
    /// Reclaims per triggering signal, indexed by `Signal::index`.
    signal_reclaims: [std::sync::atomic::AtomicU64; SIGNALS],
    /// The last signal reports, for `Manager::signals`.
    reports: parking_lot::Mutex<Vec<SignalReport>>,
    /// Who hears of discards (`sink.rs`).
    sinks: parking_lot::Mutex<Sinks>,
    /// A sink left work for a flush (the thread flushes every 10 ms).
    sinks_pending: std::sync::atomic::AtomicBool,
    /// Lazy mode: how long an allocation stays unpinned before it is
    /// offered (`None`: managed mode).
    lazy_delay: Option<Duration>,
    /// What the pressure layer is discovered with (again after a fork).
    pressure: PressureConfig,
    /// The process limit when this is the global manager with direct
    /// reclaim installed.
    direct_limit: parking_lot::Mutex<Option<usize>>,
    /// The fork generation the manager thread was spawned in.
    thread_gen: std::sync::atomic::AtomicU64,
    /// Panics the manager thread caught (module docs, "Panics").
    manager_panics: std::sync::atomic::AtomicU64,
    /// Passes the manager thread completed.
    passes: std::sync::atomic::AtomicU64,
    /// The scheduling priority the manager thread asks for.
    priority: ThreadPriority,
    /// What it got: 0 before it started, else `1 + ThreadPriority as u8`.
    thread_priority: std::sync::atomic::AtomicU8,
    /// Fault injection: how many more manager-thread passes with work to do
    /// panic on purpose ([`Manager::__panic_next_passes`]).
    #[cfg(any(test, discardable_fault_injection))]
    injected_panics: AtomicUsize,
    /// Loom models only: called with each header a pass reads outside the
    /// table lock, right before and right after the read, so that a model
    /// can check (through its own copy of the header's canary) that the
    /// header is still alive there.
    #[cfg(loom)]
    probe: Option<Probe>,
}

/// See `Core::probe`.
#[cfg(loom)]
pub(crate) type Probe = Box<dyn Fn(NonNull<Header>) + Send + Sync>;

const SIGNALS: usize = Signal::ALL.len();

impl core::fmt::Debug for Manager {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manager").field("limit", &self.inner.core.limit).field("stats", &self.stats()).finish()
    }
}

static GLOBAL: OnceLock<Manager> = OnceLock::new();

impl Manager {
    /// A builder with the defaults: [`Policy::Clock`](crate::Policy::Clock),
    /// a limit of a quarter of physical memory or of the cgroup limit
    /// (whichever is smaller), and watermarks at 90 % / 80 % of the
    /// effective limit.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// The process-wide manager, started on first use with the defaults
    /// unless [`ManagerBuilder::install_global`] configured it first.
    ///
    /// # Panics
    ///
    /// If the manager thread cannot be spawned on first use.
    pub fn global() -> &'static Manager {
        GLOBAL.get_or_init(|| {
            ManagerBuilder::default().start().unwrap_or_else(|e| panic!("discardable: global manager: {e}"))
        })
    }

    pub(crate) fn is_global_set() -> bool {
        GLOBAL.get().is_some()
    }

    /// Installs `manager` as the global one; fails if one already started.
    pub(crate) fn set_global(manager: Manager, process_limit: Option<usize>) -> Result<&'static Manager, crate::Error> {
        if GLOBAL.get().is_some() {
            return Err(crate::Error::AlreadyStarted);
        }
        let mut fresh = Some(manager);
        let installed = GLOBAL.get_or_init(|| fresh.take().expect("taken once"));
        if fresh.is_some() {
            return Err(crate::Error::AlreadyStarted);
        }
        if let Some(limit) = process_limit {
            // The global manager lives for the whole process, so its eventfd
            // stays valid for the allocator's direct reclaim.
            *installed.inner.core.direct_limit.lock() = Some(limit);
            crate::alloc::install_direct_reclaim(limit, installed.inner.arena.wake.raw_fd());
        }
        Ok(installed)
    }

    pub(crate) fn start(builder: &ManagerBuilder, limit: usize) -> Result<Manager, crate::Error> {
        let wake = Arc::new(Wake::new()?);
        let arena = Arc::new(Arena::configured(
            limit,
            Arc::clone(&wake),
            builder.mode == ReclaimMode::Lazy,
            builder.lock_pages,
        ));
        let core = Arc::new(Core {
            table: Mutex::new(Table::new(builder.policy)),
            collector: Collector::new(),
            limit,
            pinned_bytes: AtomicUsize::new(0),
            over_limit_bytes: AtomicUsize::new(0),
            limit_reclaims: std::sync::atomic::AtomicU64::new(0),
            signal_reclaims: [const { std::sync::atomic::AtomicU64::new(0) }; SIGNALS],
            reports: parking_lot::Mutex::new(Vec::new()),
            sinks: parking_lot::Mutex::new(Sinks::default()),
            sinks_pending: std::sync::atomic::AtomicBool::new(false),
            lazy_delay: (builder.mode == ReclaimMode::Lazy).then_some(builder.lazy_delay),
            pressure: PressureConfig {
                process_limit: builder.process_limit,
                watermarks: builder.watermarks,
                ..PressureConfig::default()
            },
            direct_limit: parking_lot::Mutex::new(None),
            thread_gen: std::sync::atomic::AtomicU64::new(fork::generation()),
            manager_panics: std::sync::atomic::AtomicU64::new(0),
            passes: std::sync::atomic::AtomicU64::new(0),
            priority: builder.priority,
            thread_priority: std::sync::atomic::AtomicU8::new(0),
            #[cfg(any(test, discardable_fault_injection))]
            injected_panics: AtomicUsize::new(0),
            #[cfg(loom)]
            probe: None,
        });
        fork::install();
        spawn(&arena, &core)?;
        Ok(Manager { inner: Arc::new(Inner { arena, core }) })
    }

    /// The arena, after making sure the manager thread runs in this process
    /// (a forked child restarts it here, on first use).
    pub(crate) fn arena(&self) -> &Arc<Arena> {
        self.ensure_thread();
        &self.inner.arena
    }

    /// Restarts the manager thread in a forked child: the parent's thread
    /// does not exist there. Exactly one caller wins the restart.
    fn ensure_thread(&self) {
        let core = &self.inner.core;
        let now = fork::generation();
        let seen = core.thread_gen.load(Relaxed);
        if seen == now || core.thread_gen.compare_exchange(seen, now, Relaxed, Relaxed).is_err() {
            return;
        }
        let arena = &self.inner.arena;
        if arena.wake.renew().is_err() {
            return; // no eventfd: the child runs without a manager thread
        }
        if let Some(limit) = *core.direct_limit.lock() {
            crate::alloc::install_direct_reclaim(limit, arena.wake.raw_fd());
        }
        let _ = spawn(arena, core);
    }

    /// Synchronously discards unpinned allocations in policy order until at
    /// least `bytes` were freed or nothing unpinned is left. Returns the
    /// bytes the discarded allocations occupied (their cost).
    pub fn reclaim(&self, bytes: usize) -> usize {
        self.ensure_thread();
        let _gate = fork::enter();
        let local = self.inner.core.collector.register();
        let freed = self.inner.core.reclaim(&self.inner.arena, &local, bytes);
        self.inner.core.note_limit(&self.inner.arena);
        freed
    }

    /// Registers a discard sink; headers born with the returned id report
    /// their discards to it (`sink.rs`).
    #[cfg_attr(loom, allow(dead_code))] // the cache (not built under loom) registers sinks
    pub(crate) fn add_sink(&self, sink: std::sync::Weak<dyn DiscardSink>) -> u32 {
        self.inner.core.sinks.lock().add(sink)
    }

    /// Forgets the sink `id`: later discards of its headers go unreported.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn remove_sink(&self, id: u32) {
        self.inner.core.sinks.lock().remove(id);
    }

    /// Each pressure signal the manager watches: its source, last reading,
    /// and any file that was missing or unreadable (never fatal).
    pub fn signals(&self) -> Vec<SignalReport> {
        self.inner.core.reports.lock().clone()
    }

    /// A snapshot of the manager's counters.
    pub fn stats(&self) -> Stats {
        self.ensure_thread();
        let c = &self.inner.arena.counters;
        let core = &self.inner.core;
        let mut signal_reclaims = [0; SIGNALS];
        for (out, n) in signal_reclaims.iter_mut().zip(&core.signal_reclaims) {
            *out = n.load(Relaxed);
        }
        Stats {
            discardable_bytes: c.bytes.load(Relaxed),
            pinned_bytes: core.pinned_bytes.load(Relaxed),
            discarded_count: c.discarded_count.load(Relaxed),
            discarded_bytes: c.discarded_bytes.load(Relaxed),
            over_limit_bytes: core.over_limit_bytes.load(Relaxed),
            limit: core.limit,
            allocations: c.live.load(Relaxed),
            strong_bytes: crate::alloc::strong_bytes(),
            limit_reclaims: core.limit_reclaims.load(Relaxed),
            signal_reclaims,
            direct_reclaims: crate::alloc::direct_reclaims(),
            offers: c.offers.load(Relaxed),
            revivals: c.revivals.load(Relaxed),
            kernel_discards: c.kernel_discards.load(Relaxed),
            locked_bytes: self.inner.arena.store.locked_bytes.load(Relaxed),
            lock_refusals: self.inner.arena.store.lock_refusals.load(Relaxed),
            manager_panics: core.manager_panics.load(Relaxed),
            passes: core.passes.load(Relaxed),
            thread_priority: match core.thread_priority.load(Relaxed) {
                0 => None,
                1 => Some(ThreadPriority::Normal),
                2 => Some(ThreadPriority::Raised),
                _ => Some(ThreadPriority::Realtime),
            },
        }
    }

    /// Fault injection (`--cfg discardable_fault_injection`; tests only, not part of
    /// the API): the next `n` passes of the manager thread that have
    /// something to reclaim panic midway, holding the table lock, an epoch
    /// guard and the fork gate. See the module docs, "Panics".
    #[cfg(any(test, discardable_fault_injection))]
    #[doc(hidden)]
    pub fn __panic_next_passes(&self, n: usize) {
        self.inner.core.injected_panics.store(n, Relaxed);
    }
}

impl Core {
    /// The one reclaim decision: scan, then claim victims in policy order
    /// under the table lock and release their pages outside it, until
    /// `target` bytes are freed or nothing unpinned is left. Every trigger
    /// (the thread, [`Manager::reclaim`], direct reclaim, and later a
    /// cross-process coordinator) comes through here.
    pub(crate) fn reclaim(&self, arena: &Arena, local: &LocalHandle, target: usize) -> usize {
        self.pass(arena, local, target, false).0
    }

    /// [`Self::reclaim`], and with `offer` (lazy mode, manager thread) also
    /// offers cold spans to the kernel. Returns the bytes freed and how many
    /// offerable allocations remain unoffered.
    fn pass(&self, arena: &Arena, local: &LocalHandle, target: usize, offer: bool) -> (usize, usize) {
        let guard = local.pin();
        let mut offers: Vec<NonNull<Header>> = Vec::new();
        let unoffered;
        let orphans;
        let retired;
        {
            let mut table = self.table.lock();
            table.drain(arena);
            let scan = table.scan_offering(&guard, offer.then_some(&mut offers));
            arena.counters.garbage.fetch_sub(scan.retired, Relaxed);
            self.pinned_bytes.store(scan.pinned_bytes, Relaxed);
            unoffered = scan.unoffered;
            retired = scan.retired;
            orphans = table.take_orphans();
        }
        for block in orphans {
            // SAFETY: the table retired the orphan after its last unpin and
            // handed its bytes to us (state INV-8); nobody else frees them.
            unsafe { arena.release_dropped(block) };
        }
        for header in &offers {
            #[cfg(loom)]
            self.probe(*header);
            // SAFETY: the table keeps the header until it sees the owner's
            // drop mark, and then frees it only through the epoch, which
            // `guard` holds back (table INV-1).
            if unsafe { header.as_ref() }.offer() {
                arena.counters.offers.fetch_add(1, Relaxed);
            }
            #[cfg(loom)]
            self.probe(*header);
        }
        // Deliberately broken variant for the loom models: the victims'
        // headers are read with no epoch guard holding their free back.
        #[cfg(discardable_broken_epoch)]
        drop(guard);
        let unoffered = unoffered.saturating_sub(offers.len());
        let mut freed = 0;
        let mut notices = Notices::default();
        let mut victims: Vec<NonNull<Header>> = Vec::new();
        while freed < target {
            victims.clear();
            self.table.lock().claim_victims(target - freed, BATCH, &mut victims);
            // Zero-cost victims (empty allocations) still count: stop only
            // when nothing unpinned is left.
            if victims.is_empty() {
                break;
            }
            for header in &victims {
                #[cfg(loom)]
                self.probe(*header);
                // SAFETY: we claimed it, so the table will not free it before
                // it sees the owner's drop mark, and even then only through
                // the epoch, which `guard` holds back (table INV-1).
                let h = unsafe { header.as_ref() };
                notices.push(h.sink, h.tag);
                freed += arena.release_discarded(h);
                #[cfg(loom)]
                self.probe(*header);
            }
        }
        // (The broken variant dropped it before the release loop.)
        #[cfg(not(discardable_broken_epoch))]
        drop(guard);
        if retired > 0 {
            // Hand this pass's retired headers to the collector and let it
            // free them: crossbeam on its own collects only every 128th pin,
            // which the manager's one pin per pass would reach far too
            // rarely. A bag is freed two epoch advances after it was
            // sealed, and each flush advances the epoch at most once (when
            // no other participant is pinned in an older one).
            for _ in 0..3 {
                local.pin().flush();
            }
        }
        if notices.deliver(&self.sinks) {
            self.sinks_pending.store(true, Relaxed);
            arena.wake.request();
        }
        (freed, unoffered)
    }

    /// Records how far pins keep the arena above its limit.
    fn note_limit(&self, arena: &Arena) -> usize {
        let over = arena.counters.bytes.load(Relaxed).saturating_sub(self.limit);
        self.over_limit_bytes.store(over, Relaxed);
        over
    }

    /// One pass of the manager thread: the larger of what the limit and
    /// what the pressure signals ask for. `fresh` asks for the pressure
    /// files to be read whatever their age (a timer expired); otherwise a
    /// file sample younger than `Pressure`'s bound is reused, while the
    /// process's own bytes are always current. Returns the reading and how
    /// many offerable allocations remain unoffered.
    fn run_once(&self, arena: &Arena, local: &LocalHandle, pressure: &mut Pressure, fresh: bool) -> (Reading, usize) {
        let own = arena.counters.bytes.load(Relaxed);
        let over_limit = own.saturating_sub(self.limit);
        let reading = pressure.sample_if_due(crate::alloc::strong_bytes() + own, fresh);
        let wanted = pressure.decide(&reading).unwrap_or(0);
        #[cfg(any(test, discardable_fault_injection))]
        self.inject_panic(local, over_limit.max(wanted));
        if over_limit > 0 && over_limit >= wanted {
            self.limit_reclaims.fetch_add(1, Relaxed);
        } else if let (true, Some(signal)) = (wanted > 0, reading.trigger) {
            self.signal_reclaims[signal.index()].fetch_add(1, Relaxed);
        }
        let (_, unoffered) = self.pass(arena, local, over_limit.max(wanted), self.lazy_delay.is_some());
        (reading, unoffered)
    }

    /// Fault injection: if a panic was requested and this pass has
    /// `target > 0` bytes to reclaim, panics the way a bug mid-pass would:
    /// with the pressure sampled, an epoch guard pinned and the table lock
    /// held (the caller holds the fork gate).
    #[cfg(any(test, discardable_fault_injection))]
    fn inject_panic(&self, local: &LocalHandle, target: usize) {
        if target > 0 && self.injected_panics.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok() {
            let _epoch = local.pin();
            let _table = self.table.lock();
            panic!("discardable: injected manager-thread panic (fault injection)");
        }
    }
}

/// Loom models only: the manager's state without its thread or pressure
/// discovery, so a model drives [`Core::reclaim`] and [`Core::pass`] itself
/// (`__loom::Core`).
#[cfg(loom)]
impl Core {
    /// A core ordering its table by `policy`, protecting headers with
    /// `collector` (a fresh one per model execution), offering after
    /// `lazy_delay` (`None`: managed mode), and calling `probe` around each
    /// header read outside the table lock.
    pub(crate) fn for_model(
        policy: crate::Policy,
        limit: usize,
        collector: Collector,
        lazy_delay: Option<Duration>,
        probe: Option<Probe>,
    ) -> Self {
        Core {
            table: Mutex::new(Table::new(policy)),
            collector,
            limit,
            pinned_bytes: AtomicUsize::new(0),
            over_limit_bytes: AtomicUsize::new(0),
            limit_reclaims: std::sync::atomic::AtomicU64::new(0),
            signal_reclaims: [const { std::sync::atomic::AtomicU64::new(0) }; SIGNALS],
            reports: parking_lot::Mutex::new(Vec::new()),
            sinks: parking_lot::Mutex::new(Sinks::default()),
            sinks_pending: std::sync::atomic::AtomicBool::new(false),
            lazy_delay,
            pressure: PressureConfig::default(),
            direct_limit: parking_lot::Mutex::new(None),
            thread_gen: std::sync::atomic::AtomicU64::new(fork::generation()),
            manager_panics: std::sync::atomic::AtomicU64::new(0),
            passes: std::sync::atomic::AtomicU64::new(0),
            priority: ThreadPriority::Normal,
            thread_priority: std::sync::atomic::AtomicU8::new(0),
            #[cfg(any(test, discardable_fault_injection))]
            injected_panics: AtomicUsize::new(0),
            probe,
        }
    }

    /// [`Core::pass`], for the models.
    pub(crate) fn model_pass(&self, arena: &Arena, local: &LocalHandle, target: usize, offer: bool) -> (usize, usize) {
        self.pass(arena, local, target, offer)
    }

    /// The bytes the last scan found pinned.
    pub(crate) fn pinned_bytes(&self) -> usize {
        self.pinned_bytes.load(Relaxed)
    }

    fn probe(&self, header: NonNull<Header>) {
        if let Some(probe) = &self.probe {
            probe(header);
        }
    }
}

/// Spawns the manager thread for `arena` (with a fresh look at the
/// pressure signals).
fn spawn(arena: &Arc<Arena>, core: &Arc<Core>) -> Result<(), crate::Error> {
    let pressure = discover(core);
    let weak = Arc::downgrade(arena);
    let thread_core = Arc::clone(core);
    let wake = Arc::clone(&arena.wake);
    std::thread::Builder::new()
        .name("discardable-manager".into())
        .spawn(move || run(weak, thread_core, wake, pressure))
        .map(drop)
        .map_err(crate::Error::Spawn)
}

/// Discovers the pressure signals afresh and publishes their reports.
fn discover(core: &Core) -> Pressure {
    let pressure = Pressure::discover(core.pressure.clone());
    *core.reports.lock() = pressure.reports();
    pressure
}

/// The manager thread's timers.
#[derive(Debug, Clone, Copy)]
struct Timers {
    /// Back-off while pins keep the arena over its limit.
    retry: Option<Duration>,
    /// What the pressure layer (and lazy mode) asks for.
    poll: Option<Duration>,
}

impl Default for Timers {
    /// As at spawn: a first pass at once.
    fn default() -> Self {
        Timers { retry: None, poll: Some(Duration::ZERO) }
    }
}

/// Asks the OS to schedule the calling thread with `wanted`, falling back
/// a step at a time where it refuses; returns what the thread got.
fn apply_priority(wanted: ThreadPriority) -> ThreadPriority {
    match wanted {
        ThreadPriority::Realtime if crate::os::set_realtime() => ThreadPriority::Realtime,
        ThreadPriority::Realtime | ThreadPriority::Raised if crate::os::raise_nice() => ThreadPriority::Raised,
        _ => ThreadPriority::Normal,
    }
}

/// The manager thread's body: [`step`] until the arena or the manager is
/// gone, catching a panic of any step (module docs, "Panics").
fn run(arena: Weak<Arena>, core: Arc<Core>, wake: Arc<Wake>, pressure: Pressure) {
    crate::alloc::exempt_from_direct_reclaim();
    // Reaction time under a spike is mostly waiting for a CPU: ask for a
    // better one where allowed.
    let got = apply_priority(core.priority);
    core.thread_priority.store(1 + got as u8, Relaxed);
    let local = core.collector.register();
    let mut pressure = Some(pressure);
    let mut timers = Timers::default();
    let mut backoff = RETRY_MIN;
    loop {
        // AssertUnwindSafe: after a panic, everything the step could have
        // left half-updated is rebuilt (`pressure`, `timers`) or is sound
        // to reuse (the table, see the module docs; `local`, whose epoch
        // guard the unwind dropped).
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let pressure = pressure.get_or_insert_with(|| discover(&core));
            step(&arena, &core, &wake, &local, pressure, &mut timers)
        }));
        match outcome {
            Ok(ControlFlow::Break(())) => break,
            Ok(ControlFlow::Continue(())) => backoff = RETRY_MIN,
            Err(_) => {
                core.manager_panics.fetch_add(1, Relaxed);
                crate::alloc::direct_reclaim_done();
                pressure = None;
                timers = Timers::default();
                // Bounds the rate of a panic that recurs on every pass.
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One iteration of the manager thread: wait for a wake-up, a kernel
/// notification or a timer; sample; reclaim. `Break` when the thread must
/// exit.
fn step(
    arena: &Weak<Arena>,
    core: &Core,
    wake: &Wake,
    local: &LocalHandle,
    pressure: &mut Pressure,
    timers: &mut Timers,
) -> ControlFlow<()> {
    let timeout = match (timers.retry, timers.poll) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // A pass woken only by the arena's own wake-up may reuse a recent file
    // sample; a timer (or a failed wait) asks for a fresh one, and a kernel
    // notification forces one inside the pressure layer.
    let fresh = match pressure.wait(timeout, wake.fd()) {
        Ok(ready) => !ready.extra,
        Err(_) => {
            std::thread::sleep(RETRY_MIN); // poll failed (EINVAL/ENOMEM): degrade to a slow loop
            true
        }
    };
    if wake.is_shutdown() {
        return ControlFlow::Break(());
    }
    wake.take();
    let (reading, unoffered, over) = {
        let Some(arena) = arena.upgrade() else { return ControlFlow::Break(()) };
        let _gate = fork::enter();
        let (reading, unoffered) = core.run_once(&arena, local, pressure, fresh);
        (reading, unoffered, core.note_limit(&arena) > 0)
    };
    crate::alloc::direct_reclaim_done();
    timers.retry = over.then(|| timers.retry.map_or(RETRY_MIN, |r| (r * 2).min(RETRY_MAX)));
    timers.poll = pressure.poll_interval(&reading);
    // Discard notices a sink could not apply yet (a shard was busy): retry
    // within 10 ms, so dead keys leave even if the cache gets no calls.
    if core.sinks_pending.load(Relaxed) {
        let left = sink::flush(&core.sinks);
        core.sinks_pending.store(left, Relaxed);
        if left {
            timers.poll = Some(timers.poll.map_or(SINK_RETRY, |p| p.min(SINK_RETRY)));
        }
    }
    // Lazy mode: while spans wait to be offered, scan every half delay,
    // so each is offered within the delay of its last unpin.
    if let (Some(delay), true) = (core.lazy_delay, unoffered > 0) {
        let tick = delay / 2;
        timers.poll = Some(timers.poll.map_or(tick, |p| p.min(tick)));
    }
    *core.reports.lock() = pressure.reports();
    core.passes.fetch_add(1, Relaxed);
    ControlFlow::Continue(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{Discardable, Manager, Policy};

    /// A panic mid-pass on the manager thread, with the table lock, an
    /// epoch guard and the fork gate held, is counted, and the thread goes
    /// on enforcing the limit (and releases the lock: `reclaim` works).
    #[test]
    fn manager_thread_survives_a_panic_mid_pass() {
        let page = crate::os::page_size();
        let limit = 64 * page;
        let m = Manager::builder().limit(limit).start().unwrap();
        m.__panic_next_passes(1);
        let within_limit = |m: &Manager| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while m.stats().discardable_bytes > limit {
                assert!(Instant::now() < deadline, "limit not enforced after a panic: {:?}", m.stats());
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let first: Vec<Discardable<[u8]>> = (0..32).map(|_| Discardable::zeroed_in(16 * page, &m)).collect();
        within_limit(&m);
        assert_eq!(m.stats().manager_panics, 1, "{:?}", m.stats());
        assert!(first.iter().any(Discardable::is_discarded));
        // Later wake-ups are still answered, by the same loop.
        let second: Vec<Discardable<[u8]>> = (0..32).map(|_| Discardable::zeroed_in(16 * page, &m)).collect();
        within_limit(&m);
        assert!(second.iter().any(Discardable::is_discarded));
        // The unwind released the table lock.
        let kept = m.stats().discardable_bytes;
        assert_eq!(m.reclaim(usize::MAX), kept);
        assert_eq!(m.stats().manager_panics, 1);
    }

    /// Regression (found by the `handle_ops` fuzz target): zero-cost victims
    /// must be released and counted, and must not stop the reclaim early.
    #[test]
    fn zero_length_victims_do_not_stop_reclaim() {
        for policy in [Policy::Fifo, Policy::Lru, Policy::Clock, Policy::S3Fifo] {
            let m = Manager::builder().policy(policy).limit(1 << 40).start().unwrap();
            let empties: Vec<Discardable<[u8]>> = (0..100).map(|_| Discardable::from_slice_in(&[], &m)).collect();
            let page = Discardable::<[u8]>::zeroed_in(4096, &m);
            assert_eq!(m.reclaim(usize::MAX), page.cost(), "{policy:?}");
            assert!(page.is_discarded() && empties.iter().all(Discardable::is_discarded));
            assert_eq!(m.stats().discarded_count, 101, "{policy:?}");
        }
    }
}

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
//! a pass panics by design) is caught in [`run`](thread::run), counted in
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
mod reclaim;
pub(crate) mod sink;
mod stats;
pub(crate) mod table;
mod thread;

use std::sync::{Arc, OnceLock};

use crossbeam_epoch::Collector;

pub use self::builder::{ManagerBuilder, ReclaimMode, ThreadPriority};
pub(crate) use self::reclaim::Core;
use self::sink::{DiscardSink, Sinks};
pub use self::stats::Stats;
use self::table::Table;
use self::thread::spawn;
use crate::fork;
use crate::handle::arena::{Arena, Wake};
use crate::handle::store::Block;
#[cfg(doc)]
use crate::pressure::Pressure;
use crate::pressure::{PressureConfig, Signal, SignalReport};
use crate::sync::{AtomicUsize, Mutex, Ordering::Relaxed};

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
    /// (whichever is smaller), and watermarks at 90 % / 87 % of the
    /// effective limit (97 % / 95 % of a process limit).
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
        #[cfg(not(loom))]
        let group = match &builder.group {
            None => None,
            Some(name) => {
                let path = crate::group::path(std::path::Path::new(crate::group::DIR), name);
                match crate::group::Member::join(path, builder.weight) {
                    Ok(member) => Some(parking_lot::Mutex::new(member)),
                    Err((path, uid)) => return Err(crate::Error::ForeignGroupRegistry { path, uid }),
                }
            }
        };
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
            ceiling: AtomicUsize::new(usize::MAX),
            pressure: PressureConfig {
                process_limit: builder.process_limit,
                watermarks: builder.watermarks,
                ..PressureConfig::default()
            },
            direct_limit: parking_lot::Mutex::new(None),
            thread_gen: std::sync::atomic::AtomicU64::new(fork::generation()),
            manager_panics: std::sync::atomic::AtomicU64::new(0),
            passes: std::sync::atomic::AtomicU64::new(0),
            reclaim_cpu_ns: std::sync::atomic::AtomicU64::new(0),
            room_reclaims: std::sync::atomic::AtomicU64::new(0),
            room_blocked: AtomicUsize::new(0),
            created_seen: std::sync::atomic::AtomicU64::new(0),
            priority: builder.priority,
            thread_priority: std::sync::atomic::AtomicU8::new(0),
            #[cfg(not(loom))]
            group,
            group_faults: std::sync::atomic::AtomicU64::new(0),
            group_published: AtomicUsize::new(0),
            #[cfg(any(test, discardable_fault_injection))]
            injected_panics: AtomicUsize::new(0),
            #[cfg(loom)]
            probe: None,
        });
        // Lazy mode hands pages to the kernel and reuses none of them.
        arena.store.set_keep_limit(if builder.mode == ReclaimMode::Lazy { 0 } else { core.slack() });
        fork::install();
        spawn(&arena, &core)?;
        Ok(Manager { inner: Arc::new(Inner { arena, core }) })
    }

    /// Bytes for a new allocation of `size` bytes from this manager's store,
    /// with room made under the limit first ([`Core::make_room`]). What
    /// every constructor takes its bytes (and the arena) from.
    pub(crate) fn alloc_block(
        &self,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<(Block, &Arc<Arena>), crate::Error> {
        let arena = self.arena();
        self.inner.core.make_room(arena, size);
        let block = arena.store.alloc(size, align, zeroed)?;
        self.inner.core.note_group_drift(arena);
        Ok((block, arena))
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

    /// What the arena may hold before the manager would reclaim, as of its
    /// thread's last pass (`Core::publish_ceiling`; `usize::MAX` before
    /// the first).
    #[cfg_attr(loom, allow(dead_code))] // the cache (not built under loom) asks
    pub(crate) fn ceiling(&self) -> usize {
        self.inner.core.ceiling.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// The strong bytes of the manager's table and policy, and the
    /// allocations they track (`Table::heap_bytes`).
    #[cfg_attr(loom, allow(dead_code))] // the cache (not built under loom) asks
    pub(crate) fn table_bytes(&self) -> (usize, usize) {
        self.inner.core.table.lock().heap_bytes()
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
        // Kept before live bytes: see `Arena::held`.
        let kept_bytes = self.inner.arena.kept_bytes();
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
            reclaim_cpu_ns: core.reclaim_cpu_ns.load(Relaxed),
            room_reclaims: core.room_reclaims.load(Relaxed),
            kept_bytes,
            madvise_calls: self.inner.arena.store.advised.load(Relaxed),
            thread_priority: match core.thread_priority.load(Relaxed) {
                0 => None,
                1 => Some(ThreadPriority::Normal),
                2 => Some(ThreadPriority::Raised),
                _ => Some(ThreadPriority::Realtime),
            },
            group_faults: core.group_faults.load(Relaxed),
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

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
//! Must never: be reached from the global allocator's path, or hold the
//! table lock across a system call.

mod builder;
mod stats;
mod table;

use core::ptr::NonNull;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crossbeam_epoch::{Collector, LocalHandle};

pub use self::builder::ManagerBuilder;
pub use self::stats::Stats;
use self::table::Table;
use crate::handle::arena::{Arena, Wake, Woken};
use crate::handle::header::Header;
use crate::sync::{AtomicUsize, Mutex, Ordering::Relaxed};

/// Victims claimed per table-lock acquisition.
const BATCH: usize = 64;
/// First retry delay while pins keep the arena over its limit.
const RETRY_MIN: Duration = Duration::from_millis(5);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A discardable-memory manager: a budget, a replacement policy and the
/// thread that enforces them. Cheap to clone (one `Arc`).
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
}

impl core::fmt::Debug for Manager {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manager").field("limit", &self.inner.core.limit).field("stats", &self.stats()).finish()
    }
}

static GLOBAL: OnceLock<Manager> = OnceLock::new();

impl Manager {
    /// A builder with the defaults: [`Policy::Clock`](crate::Policy::Clock)
    /// and a limit of a quarter of physical memory or of the cgroup limit,
    /// whichever is smaller.
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

    /// Installs `manager` as the global one; fails if one already started.
    pub(crate) fn set_global(manager: Manager) -> Result<&'static Manager, crate::Error> {
        if GLOBAL.get().is_some() {
            return Err(crate::Error::AlreadyStarted);
        }
        let mut fresh = Some(manager);
        let installed = GLOBAL.get_or_init(|| fresh.take().expect("taken once"));
        match fresh {
            None => Ok(installed),
            Some(_) => Err(crate::Error::AlreadyStarted),
        }
    }

    pub(crate) fn start(builder: &ManagerBuilder, limit: usize) -> Result<Manager, crate::Error> {
        let wake = Arc::new(Wake::default());
        let arena = Arc::new(Arena::new(limit, Arc::clone(&wake)));
        let core = Arc::new(Core {
            table: Mutex::new(Table::new(builder.policy)),
            collector: Collector::new(),
            limit,
            pinned_bytes: AtomicUsize::new(0),
            over_limit_bytes: AtomicUsize::new(0),
        });
        let weak = Arc::downgrade(&arena);
        let thread_core = Arc::clone(&core);
        std::thread::Builder::new()
            .name("discardable-manager".into())
            .spawn(move || run(weak, thread_core, wake))
            .map_err(crate::Error::Spawn)?;
        Ok(Manager { inner: Arc::new(Inner { arena, core }) })
    }

    pub(crate) fn arena(&self) -> &Arc<Arena> {
        &self.inner.arena
    }

    /// Synchronously discards unpinned allocations in policy order until at
    /// least `bytes` were freed or nothing unpinned is left. Returns the
    /// bytes the discarded allocations occupied (their cost).
    pub fn reclaim(&self, bytes: usize) -> usize {
        let local = self.inner.core.collector.register();
        let freed = self.inner.core.reclaim(&self.inner.arena, &local, bytes);
        self.inner.core.note_limit(&self.inner.arena);
        freed
    }

    /// A snapshot of the manager's counters.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.arena.counters;
        let core = &self.inner.core;
        Stats {
            discardable_bytes: c.bytes.load(Relaxed),
            pinned_bytes: core.pinned_bytes.load(Relaxed),
            discarded_count: c.discarded_count.load(Relaxed),
            discarded_bytes: c.discarded_bytes.load(Relaxed),
            over_limit_bytes: core.over_limit_bytes.load(Relaxed),
            limit: core.limit,
            allocations: c.live.load(Relaxed),
        }
    }
}

impl Core {
    /// The one reclaim decision: scan, then claim victims in policy order
    /// under the table lock and release their pages outside it, until
    /// `target` bytes are freed or nothing unpinned is left.
    pub(crate) fn reclaim(&self, arena: &Arena, local: &LocalHandle, target: usize) -> usize {
        let guard = local.pin();
        {
            let mut table = self.table.lock();
            table.drain(arena);
            let scan = table.scan(&guard);
            arena.counters.garbage.fetch_sub(scan.retired, Relaxed);
            self.pinned_bytes.store(scan.pinned_bytes, Relaxed);
        }
        let mut freed = 0;
        let mut victims: Vec<NonNull<Header>> = Vec::with_capacity(BATCH.min(target.max(1)));
        while freed < target {
            victims.clear();
            let claimed = self.table.lock().claim_victims(target - freed, BATCH, &mut victims);
            if claimed == 0 {
                break;
            }
            for header in &victims {
                // SAFETY: we claimed it, so the table will not free it before
                // it sees the owner's drop mark, and even then only through
                // the epoch, which `guard` holds back (table INV-1).
                freed += arena.release_discarded(unsafe { header.as_ref() });
            }
        }
        freed
    }

    /// Records how far pins keep the arena above its limit.
    fn note_limit(&self, arena: &Arena) -> usize {
        let over = arena.counters.bytes.load(Relaxed).saturating_sub(self.limit);
        self.over_limit_bytes.store(over, Relaxed);
        over
    }

    /// One pass of the manager thread: enforce the limit (or, under it, just
    /// drain and sweep). Returns whether pins kept the arena over its limit.
    pub(crate) fn run_once(&self, arena: &Arena, local: &LocalHandle) -> bool {
        let bytes = arena.counters.bytes.load(Relaxed);
        self.reclaim(arena, local, bytes.saturating_sub(self.limit));
        self.note_limit(arena) > 0
    }
}

/// The manager thread's body.
fn run(arena: Weak<Arena>, core: Arc<Core>, wake: Arc<Wake>) {
    let local = core.collector.register();
    let mut retry: Option<Duration> = None;
    loop {
        if wake.wait(retry) == Woken::Shutdown {
            break;
        }
        let Some(arena) = arena.upgrade() else { break };
        let over = core.run_once(&arena, &local);
        drop(arena);
        retry = over.then(|| retry.map_or(RETRY_MIN, |r| (r * 2).min(RETRY_MAX)));
    }
}

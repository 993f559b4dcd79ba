//! The reclaim core: [`Core`], the manager state the manager thread
//! shares, and the one reclaim decision ([`Core::reclaim`], [`Core::pass`])
//! that every trigger comes through, with the thread's pass
//! ([`Core::run_once`]) and its fault injection. The parent module's docs
//! cover the threads, the panic story and what this must never do.

use core::ptr::NonNull;
use std::time::Duration;

use crossbeam_epoch::{Collector, LocalHandle};

use super::sink::{Notices, Sinks};
use super::table::Table;
#[cfg(doc)]
use super::Manager;
use super::{ThreadPriority, SIGNALS};
#[cfg(loom)]
use crate::fork;
use crate::handle::arena::Arena;
use crate::handle::header::Header;
use crate::handle::store::Block;
use crate::pressure::{Pressure, PressureConfig, Reading, SignalReport};
use crate::sync::{AtomicUsize, Mutex, Ordering::Relaxed};

/// How far a group member's bytes may move before its constructors wake
/// the manager thread to publish them (`Core::note_group_drift`).
const GROUP_DRIFT: usize = 4 << 20;
/// Victims claimed per table-lock acquisition.
const BATCH: usize = 64;
/// Victims' bytes released together at most (in as few `madvise` calls as
/// adjacency allows): large enough to coalesce, small enough that the
/// first relief under a spike does not wait for a whole batch.
const RELEASE_BYTES: usize = 4 << 20;

/// What a pass reclaims for: how it looks at the table, and where the
/// bytes it frees go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The manager's own limit (its thread, or a constructor making room),
    /// or a pressure signal while new allocations keep coming in (their
    /// bytes are better taken from the victims' spans than from fresh
    /// pages): a full scan only when one is due (`table::SCAN_EVERY`; victims are
    /// checked for accesses as they are claimed), and discarded spans kept
    /// mapped for reuse while the store's pool has room.
    Budget,
    /// Memory must really fall (a pressure signal with no allocations
    /// coming in, or an explicit [`Manager::reclaim`]): a full scan first, and every freed page back
    /// to the OS, the kept spans' too.
    Release,
    /// A constructor making room ([`Core::make_room`]): as `Budget`, but
    /// never a full scan, which is the manager thread's to pay for.
    Room,
}

impl Purpose {
    /// Whether victims' spans may stay mapped for reuse.
    fn keeps(self) -> bool {
        self != Purpose::Release
    }
}

/// The manager state the thread shares: everything but the arena.
pub(crate) struct Core {
    pub(super) table: Mutex<Table>,
    pub(super) collector: Collector,
    pub(super) limit: usize,
    pub(super) pinned_bytes: AtomicUsize,
    pub(super) over_limit_bytes: AtomicUsize,
    /// Reclaims triggered by the manager's own limit.
    pub(super) limit_reclaims: std::sync::atomic::AtomicU64,
    /// Reclaims per triggering signal, indexed by `Signal::index`.
    pub(super) signal_reclaims: [std::sync::atomic::AtomicU64; SIGNALS],
    /// The last signal reports, for `Manager::signals`.
    pub(super) reports: parking_lot::Mutex<Vec<SignalReport>>,
    /// Who hears of discards (`sink.rs`).
    pub(super) sinks: parking_lot::Mutex<Sinks>,
    /// A sink left work for a flush (the thread flushes every 10 ms).
    pub(super) sinks_pending: std::sync::atomic::AtomicBool,
    /// Lazy mode: how long an allocation stays unpinned before it is
    /// offered (`None`: managed mode).
    pub(super) lazy_delay: Option<Duration>,
    /// The arena's ceiling as of the manager thread's last pass: what the
    /// arena may hold short of the manager's limit and of the tightest
    /// signal's high mark ([`Core::publish_ceiling`]). Caches
    /// keep themselves under it by their own sweep and admission.
    pub(super) ceiling: AtomicUsize,
    /// What the pressure layer is discovered with (again after a fork).
    pub(super) pressure: PressureConfig,
    /// The process limit when this is the global manager with direct
    /// reclaim installed.
    pub(super) direct_limit: parking_lot::Mutex<Option<usize>>,
    /// The fork generation the manager thread was spawned in.
    pub(super) thread_gen: std::sync::atomic::AtomicU64,
    /// Panics the manager thread caught (the parent module's docs, "Panics").
    pub(super) manager_panics: std::sync::atomic::AtomicU64,
    /// Passes the manager thread completed.
    pub(super) passes: std::sync::atomic::AtomicU64,
    /// CPU time spent in passes, on every thread that ran one, in ns.
    pub(super) reclaim_cpu_ns: std::sync::atomic::AtomicU64,
    /// Passes run by constructors making room under the limit.
    pub(super) room_reclaims: std::sync::atomic::AtomicU64,
    /// How far the last room pass fell short of its need (pins held it).
    pub(super) room_blocked: AtomicUsize,
    /// `Counters::created` at the manager thread's last pass.
    pub(super) created_seen: std::sync::atomic::AtomicU64,
    /// The scheduling priority the manager thread asks for.
    pub(super) priority: ThreadPriority,
    /// What it got: 0 before it started, else `1 + ThreadPriority as u8`.
    pub(super) thread_priority: std::sync::atomic::AtomicU8,
    /// This manager's membership of a group (`ManagerBuilder::group`); the
    /// manager thread publishes and asks for its share through it.
    #[cfg(not(loom))]
    pub(super) group: Option<parking_lot::Mutex<crate::group::Member>>,
    /// Passes in which the group's registry could not be used.
    pub(super) group_faults: std::sync::atomic::AtomicU64,
    /// The held bytes this member last published.
    pub(super) group_published: AtomicUsize,
    /// Fault injection: how many more manager-thread passes with work to do
    /// panic on purpose ([`Manager::__panic_next_passes`]).
    #[cfg(any(test, discardable_fault_injection))]
    pub(super) injected_panics: AtomicUsize,
    /// Loom models only: called with each header a pass reads outside the
    /// table lock, right before and right after the read, so that a model
    /// can check (through its own copy of the header's canary) that the
    /// header is still alive there.
    #[cfg(loom)]
    pub(super) probe: Option<Probe>,
}

/// See `Core::probe`.
#[cfg(loom)]
pub(crate) type Probe = Box<dyn Fn(NonNull<Header>) + Send + Sync>;

impl Core {
    /// The one reclaim decision: scan, then claim victims in policy order
    /// under the table lock and release their pages outside it, until
    /// `target` bytes are freed or nothing unpinned is left. Every trigger
    /// (the thread, [`Manager::reclaim`], direct reclaim, and later a
    /// cross-process coordinator) comes through here.
    pub(crate) fn reclaim(&self, arena: &Arena, local: &LocalHandle, target: usize) -> usize {
        self.pass(arena, local, target, target, false, Purpose::Release).0
    }

    /// How far below its limit a pass for the limit takes the arena, so
    /// that passes come once per this many bytes of new allocations rather
    /// than once per allocation; also the bound of the store's pool of
    /// kept spans. 1 % of the limit, at most 4 MiB.
    pub(crate) fn slack(&self) -> usize {
        (self.limit / 100).min(4 << 20)
    }

    /// Makes room for a new allocation of `size` bytes before it is taken
    /// (the limit is a bound, not a hint, at any allocation rate): when it
    /// would take the arena past the limit by more than [`Self::slack`]
    /// (plus what pins kept the last such pass from freeing), the calling
    /// constructor runs a budget pass itself, down to the slack below the
    /// limit, without waiting for the manager thread. Never called from
    /// the global allocator's path.
    pub(crate) fn make_room(&self, arena: &Arena, size: usize) {
        let over = (arena.held() + size).saturating_sub(self.limit);
        if over <= self.slack() + self.room_blocked.load(Relaxed) {
            return;
        }
        let _gate = crate::fork::enter();
        let local = self.collector.register();
        self.room_reclaims.fetch_add(1, Relaxed);
        let (freed, _) = self.pass(arena, &local, over, over + self.slack(), false, Purpose::Room);
        // Fell short: pins hold the rest; do not retry on every allocation
        // until the arena grows past what they hold.
        self.room_blocked.store(over.saturating_sub(freed), Relaxed);
    }

    /// [`Self::reclaim`] for `purpose`: frees at least `need` bytes, and on
    /// towards `want` while victims fit (`Table::claim_victims`); with
    /// `offer` (lazy mode, manager thread) also offers cold spans to the
    /// kernel. Returns the bytes freed and how many offerable allocations
    /// remain unoffered.
    fn pass(
        &self,
        arena: &Arena,
        local: &LocalHandle,
        need: usize,
        want: usize,
        offer: bool,
        purpose: Purpose,
    ) -> (usize, usize) {
        let cpu = crate::os::thread_cpu_ns();
        let guard = local.pin();
        let mut offers: Vec<NonNull<Header>> = Vec::new();
        let mut unoffered = 0;
        let orphans;
        let mut retired = 0;
        {
            let mut table = self.table.lock();
            table.drain(arena);
            let scan = match purpose {
                Purpose::Release => true,
                // Dropped handles' headers wait for a scan to be retired.
                Purpose::Budget => table.scan_is_due() || arena.garbage_is_high(),
                Purpose::Room => false,
            };
            if offer || scan {
                let scan = table.scan_offering(&guard, offer.then_some(&mut offers));
                arena.counters.garbage.fetch_sub(scan.retired, Relaxed);
                self.pinned_bytes.store(scan.pinned_bytes, Relaxed);
                unoffered = scan.unoffered;
                retired = scan.retired;
            }
            orphans = table.take_orphans();
        }
        if purpose == Purpose::Release {
            arena.store.flush_kept();
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
        let mut blocks: Vec<Block> = Vec::new();
        let mut pending = 0;
        let mut last = 0;
        while freed < need || (last > 0 && freed + last <= want) {
            victims.clear();
            last = self
                .table
                .lock()
                .claim_victims(need.saturating_sub(freed), want.saturating_sub(freed), last, BATCH, &mut victims)
                .1;
            // Zero-cost victims (empty allocations) still count: stop only
            // when nothing unpinned is left.
            if victims.is_empty() {
                break;
            }
            for (n, header) in victims.iter().enumerate() {
                #[cfg(loom)]
                self.probe(*header);
                // SAFETY: we claimed it, so the table will not free it before
                // it sees the owner's drop mark, and even then only through
                // the epoch, which `guard` holds back (table INV-1).
                let h = unsafe { header.as_ref() };
                notices.push(h.sink, u64::from(h.tag));
                blocks.push(h.block());
                freed += h.cost();
                pending += h.cost();
                #[cfg(loom)]
                self.probe(*header);
                // Release at the end of each batch (claimed bytes still count
                // as held) and every `RELEASE_BYTES` within it (relief under
                // a spike should not wait for a whole batch of large victims).
                if pending >= RELEASE_BYTES || n + 1 == victims.len() {
                    // SAFETY: each block is a copy of a victim's header
                    // taken while our claim held it (its discard is ours:
                    // state INV-4), listed once.
                    unsafe { arena.release_victims(&mut blocks, purpose.keeps()) };
                    pending = 0;
                }
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
        self.reclaim_cpu_ns.fetch_add(crate::os::thread_cpu_ns().saturating_sub(cpu), Relaxed);
        (freed, unoffered)
    }

    /// Records how far pins keep the arena above its limit.
    pub(super) fn note_limit(&self, arena: &Arena) -> usize {
        let over = arena.held().saturating_sub(self.limit);
        self.over_limit_bytes.store(over, Relaxed);
        over
    }

    /// One pass of the manager thread: the larger of what the limit and
    /// what the pressure signals ask for. `fresh` asks for the pressure
    /// files to be read whatever their age (a timer expired); otherwise a
    /// file sample younger than `Pressure`'s bound is reused, while the
    /// process's own bytes are always current. Returns the reading and how
    /// many offerable allocations remain unoffered.
    pub(super) fn run_once(
        &self,
        arena: &Arena,
        local: &LocalHandle,
        pressure: &mut Pressure,
        fresh: bool,
    ) -> (Reading, usize) {
        let own = arena.held();
        let over_limit = own.saturating_sub(self.limit);
        let reading = pressure.sample_if_due(crate::alloc::strong_bytes() + own, fresh);
        let decided = pressure.decide(&reading).unwrap_or(0);
        let wanted = self.group_part(arena, pressure, reading.trigger, decided);
        #[cfg(any(test, discardable_fault_injection))]
        self.inject_panic(local, over_limit.max(wanted));
        // New allocations since the last pass: under pressure too, their
        // bytes are better taken from the victims' kept spans than from
        // fresh pages (the pool is small and counts as usage).
        let created = arena.counters.created.load(Relaxed);
        let incoming = self.created_seen.swap(created, Relaxed) != created;
        let purpose = if over_limit > 0 && over_limit >= wanted {
            self.limit_reclaims.fetch_add(1, Relaxed);
            Purpose::Budget
        } else if let (true, Some(signal)) = (wanted > 0, reading.trigger) {
            self.signal_reclaims[signal.index()].fetch_add(1, Relaxed);
            if incoming {
                Purpose::Budget
            } else {
                Purpose::Release
            }
        } else {
            Purpose::Budget
        };
        let need = over_limit.max(wanted);
        // Over the limit, go on into the slack below it (`slack`).
        let want = if over_limit > 0 { need.max(over_limit + self.slack()) } else { need };
        let (freed, unoffered) = self.pass(arena, local, need, want, self.lazy_delay.is_some(), purpose);
        if freed > 0 {
            self.group_publish(arena);
        }
        self.publish_ceiling(arena, pressure.room(&reading).saturating_add(freed));
        (reading, unoffered)
    }

    /// Publishes the arena's ceiling: what it holds now plus the `room`
    /// left before the tightest signal's high mark (`Pressure::room`, as of
    /// the last reading, plus what this pass freed since), within the
    /// manager's limit, less the slack. A cache that grows into it drops
    /// its own cold values instead (its sweep and admission), so under
    /// sustained pressure the manager's reclaim is seldom what picks a
    /// cache's values.
    ///
    /// A group member publishes only its own limit: what a shared signal
    /// leaves is the group's to share out by weight (`group_part`), not
    /// the fastest cache's to fill.
    fn publish_ceiling(&self, arena: &Arena, room: usize) {
        let room = if self.in_group() { usize::MAX } else { room };
        let held = arena.held();
        let room = room.min(self.limit.saturating_sub(held)).saturating_sub(self.slack());
        self.ceiling.store(held.saturating_add(room), Relaxed);
    }

    /// The group's part in the one decision: publishes this member's
    /// figures (its heartbeat), and when a signal the group shares asks for
    /// `wanted` bytes, returns this member's part of them (`group` module
    /// docs). Without a group, for the process limit, or while the registry
    /// cannot be used (counted in `group_faults`), `wanted` as it is.
    #[cfg(not(loom))]
    fn group_part(
        &self,
        arena: &Arena,
        pressure: &Pressure,
        trigger: Option<crate::pressure::Signal>,
        wanted: usize,
    ) -> usize {
        use crate::pressure::Signal;
        let Some(group) = &self.group else { return wanted };
        let mut member = group.lock();
        let (now, held) = (crate::os::monotonic_ms(), arena.held() as u64);
        let mut result = self.publish_locked(&mut member, arena, now, held);
        let mut part = wanted;
        if wanted > 0
            && matches!(trigger, Some(Signal::CgroupV1 | Signal::CgroupV2 | Signal::MemAvailable | Signal::Psi))
        {
            result = result
                .and_then(|()| {
                    member.give_back(now, wanted as u64, held, &|pid| pressure.shares_trigger(trigger, u64::from(pid)))
                })
                .map(|mine| {
                    part = mine as usize;
                });
        }
        if result.is_err() {
            self.group_faults.fetch_add(1, Relaxed);
        }
        part
    }

    /// Publishes this member's figures now (after a pass, so the others
    /// see what it holds once it gave back); a fault is counted.
    #[cfg(not(loom))]
    fn group_publish(&self, arena: &Arena) {
        let Some(group) = &self.group else { return };
        let mut member = group.lock();
        if self.publish_locked(&mut member, arena, crate::os::monotonic_ms(), arena.held() as u64).is_err() {
            self.group_faults.fetch_add(1, Relaxed);
        }
    }

    #[cfg(not(loom))]
    fn publish_locked(
        &self,
        member: &mut crate::group::Member,
        arena: &Arena,
        now: u64,
        held: u64,
    ) -> Result<(), crate::group::Fault> {
        let discarded = arena.counters.discarded_bytes.load(Relaxed);
        member.publish(now, held, self.pinned_bytes.load(Relaxed) as u64, discarded)?;
        self.group_published.store(held as usize, Relaxed);
        Ok(())
    }

    /// A constructor's check (never the global allocator's path): when the
    /// bytes held moved by [`GROUP_DRIFT`] since the last publication, wake
    /// the manager thread to publish, so the others' shares are computed
    /// from figures at most that stale.
    pub(super) fn note_group_drift(&self, arena: &Arena) {
        if self.in_group() && arena.held().abs_diff(self.group_published.load(Relaxed)) >= GROUP_DRIFT {
            arena.wake.request();
        }
    }

    /// Loom models have no group.
    #[cfg(loom)]
    fn group_part(&self, _: &Arena, _: &Pressure, _: Option<crate::pressure::Signal>, wanted: usize) -> usize {
        wanted
    }

    #[cfg(loom)]
    fn group_publish(&self, _: &Arena) {}

    /// Whether this manager is a member of a group (its thread then wakes
    /// at least every heartbeat).
    pub(super) fn in_group(&self) -> bool {
        #[cfg(not(loom))]
        return self.group.is_some();
        #[cfg(loom)]
        false
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
            ceiling: AtomicUsize::new(usize::MAX),
            pressure: PressureConfig::default(),
            direct_limit: parking_lot::Mutex::new(None),
            thread_gen: std::sync::atomic::AtomicU64::new(fork::generation()),
            manager_panics: std::sync::atomic::AtomicU64::new(0),
            passes: std::sync::atomic::AtomicU64::new(0),
            reclaim_cpu_ns: std::sync::atomic::AtomicU64::new(0),
            room_reclaims: std::sync::atomic::AtomicU64::new(0),
            room_blocked: AtomicUsize::new(0),
            created_seen: std::sync::atomic::AtomicU64::new(0),
            priority: ThreadPriority::Normal,
            thread_priority: std::sync::atomic::AtomicU8::new(0),
            group_faults: std::sync::atomic::AtomicU64::new(0),
            group_published: AtomicUsize::new(0),
            #[cfg(any(test, discardable_fault_injection))]
            injected_panics: AtomicUsize::new(0),
            probe,
        }
    }

    /// [`Core::pass`], for the models.
    pub(crate) fn model_pass(&self, arena: &Arena, local: &LocalHandle, target: usize, offer: bool) -> (usize, usize) {
        self.pass(arena, local, target, target, offer, Purpose::Release)
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

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Discardable, Manager, Policy};

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

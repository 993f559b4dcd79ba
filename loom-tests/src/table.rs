//! Models of header lifetime: the owner drops its handle while the manager
//! drains, scans and claims, or offers (DESIGN.md protocol invariant 4,
//! table INV-1, state INV-5).
//!
//! Headers are the shipped ones, published through the shipped arena intake
//! and owned by the shipped table inside the shipped manager [`Core`]; the
//! manager's side is `Core::reclaim` itself (src/manager/reclaim.rs), and the
//! owner's side follows `Discardable::drop` (src/handle/mod.rs). Both use a
//! fresh crossbeam-epoch [`Collector`] per execution, each thread with its
//! own registered handle, as crossbeam's own loom tests do.
//!
//! Under loom every header carries a canary, a loom `UnsafeCell<bool>` that
//! the header's destructor sets. The model keeps its own clone (so checking
//! it never reads the header) and reads it right before and right after
//! every read of a header the table may free: the owner's reads here, the
//! reclaimer's through the probe `Core` calls around each header it reads
//! outside the table lock. A read that races with the free is a loom
//! causality violation, one that follows it trips the flag.

use core::ptr::NonNull;

use crossbeam_epoch::{Collector, LocalHandle};
use discardable::__loom::pages::Pages;
use discardable::__loom::{self as internals, Arena, Block, Core, Dropped, Header, Loc, Wake};
use discardable::Policy;
use loom::cell::UnsafeCell;
use loom::sync::atomic::Ordering::Relaxed;
use loom::sync::Arc;
use loom::thread;

use crate::harness;

/// What the one allocation costs.
const COST: usize = 4096;

/// The model's own handle on a header's canary.
type Canary = Arc<UnsafeCell<bool>>;

/// A header pointer that may cross to another model thread.
#[derive(Debug, Clone, Copy)]
struct HeaderPtr(NonNull<Header>);

// SAFETY: headers are `Send + Sync`; the pointer is only dereferenced under
// the protocol the models check.
unsafe impl Send for HeaderPtr {}

/// A canary the reclaimer's probe may share.
struct SharedCanary(Canary);

// SAFETY: the cell is only read through `assert_alive` and written once by
// the header's destructor; loom checks every such access for races.
unsafe impl Sync for SharedCanary {}
// SAFETY: as above.
unsafe impl Send for SharedCanary {}

impl SharedCanary {
    fn check(&self, what: &str) {
        assert_alive(&self.0, what);
    }
}

/// Asserts that the header behind `canary` has not been freed, as a loom
/// read of the canary: any free not ordered after this point is rejected.
fn assert_alive(canary: &Canary, what: &str) {
    // SAFETY: a read; the only write is the header's destructor, and loom
    // checks the two are ordered.
    canary.with(|freed| assert!(!unsafe { *freed }, "{what}: header read after its free"));
}

/// `Discardable::drop`: copy what is needed from the header, count it as
/// garbage, mark it dropped, free the bytes if the owner won (telling the
/// lazy-mode page source first, if any), count the drop. The header is not
/// touched after `mark_dropped`.
fn drop_handle(arena: &Arena, header: HeaderPtr, canary: &Canary, pages: Option<&Pages>) {
    assert_alive(canary, "owner");
    // SAFETY: the header is alive until the owner marks it dropped (INV-4);
    // the canary reads around this check exactly that.
    let h = unsafe { header.0.as_ref() };
    let block = h.block();
    assert_alive(canary, "owner");
    arena.note_dropping();
    if h.state.mark_dropped() == Dropped::OwnsBytes {
        if let Some(pages) = pages {
            pages.free();
        }
        // SAFETY: the owner won, so the bytes are its own to free.
        unsafe { arena.release_dropped(block) };
    }
    arena.note_dropped();
}

/// Pins and flushes: the collection crossbeam runs on some later pin, made
/// to happen now so that a premature free would happen inside the model.
fn collect(local: &LocalHandle) {
    local.pin().flush();
}

/// The owner drops the last handle to an allocation while the manager runs
/// a reclaim pass that wants its bytes.
///
/// The manager thread drains the header from the arena's intake, scans and
/// claims it (if it is still alive) and releases its bytes outside the
/// lock. The owner thread drops the handle, then runs a sweep pass of its
/// own (`Manager::reclaim` with nothing to free, or the manager thread's
/// next `run_once`), which retires the dropped header through its epoch
/// guard (unless the manager's scan saw the mark first and retired it).
/// Afterwards each thread collects twice, enough for the epoch to advance
/// past the retirement whenever nobody is pinned, so the free can happen on
/// either thread. Whenever the manager claimed the header and still reads
/// it, only its epoch guard keeps the header alive.
///
/// At the end the bytes were freed exactly once (by the owner or by the
/// manager), the counters are back to zero, and the header was freed.
pub fn last_handle_dropped_while_the_manager_scans() {
    harness::check("last handle dropped while the manager scans", 2, || {
        let collector = Collector::new();
        let arena = Arc::new(Arena::new(usize::MAX, std::sync::Arc::new(Wake::default())));
        let header = HeaderPtr(arena.register(Block { ptr: NonNull::dangling(), loc: Loc::Empty, cost: COST }));
        // SAFETY: just created; nobody else has it yet.
        let canary: Canary = Arc::clone(&unsafe { header.0.as_ref() }.canary);
        let probe = {
            let canary = SharedCanary(Arc::clone(&canary));
            Box::new(move |_: NonNull<Header>| canary.check("reclaimer"))
        };
        let core = Arc::new(Core::new(Policy::Fifo, collector.clone(), None, Some(probe)));

        let manager = {
            let (collector, arena, core) = (collector.clone(), Arc::clone(&arena), Arc::clone(&core));
            thread::spawn(move || {
                let local = collector.register();
                let freed = core.reclaim(&arena, &local, COST);
                collect(&local);
                collect(&local);
                freed
            })
        };

        let local = collector.register();
        drop_handle(&arena, header, &canary, None);
        let swept = core.reclaim(&arena, &local, 0);
        assert_eq!(swept, 0);
        collect(&local);
        collect(&local);

        let freed = manager.join().unwrap();
        assert!(freed == 0 || freed == COST);
        let c = &arena.counters;
        assert_eq!(c.bytes.load(Relaxed), 0, "the bytes were not freed exactly once");
        assert_eq!(c.live.load(Relaxed), 0);
        assert_eq!(c.garbage.load(Relaxed), 0, "the dropped header was not retired exactly once");
        assert_eq!(c.discarded_count.load(Relaxed), (freed / COST) as u64);

        drop(local);
        drop(core);
        drop(collector);
        // SAFETY: every thread that could free the header is done.
        assert!(canary.with(|freed| unsafe { *freed }), "the header was never freed");
    });
}

/// Lazy mode: the owner drops the last handle while the manager's pass
/// offers the allocation (`Core::pass` with offering on: the scan picks the
/// idle span under the table lock, the offer happens outside it under the
/// pass's epoch guard).
///
/// One pass before the race has seen the span idle once; the manager's pass
/// in the race sees it idle twice and offers it, unless the drop mark came
/// first. `mark_dropped` waits out an offer in progress, so the offerer
/// never touches freed pages (the page source rejects that); an offer after
/// the mark fails. The owner then sweeps, retiring the header through its
/// epoch guard, and the manager's probe checks that the header it offers
/// is alive. At the end the bytes were freed once, by the owner, and the
/// header was freed.
pub fn last_handle_dropped_while_the_manager_offers() {
    let outcomes = harness::Outcomes::new(&["offered before the drop mark", "drop mark before the offer"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("last handle dropped while the manager offers", 2, move || {
        let collector = Collector::new();
        let arena = Arc::new(internals::lazy_arena());
        let block = internals::alloc_span(&arena, 1);
        let pages = Pages::attach(block.ptr, &[1], 2);
        let header = HeaderPtr(arena.register(block));
        // SAFETY: just created; nobody else has it yet.
        let canary: Canary = Arc::clone(&unsafe { header.0.as_ref() }.canary);
        let probe = {
            let canary = SharedCanary(Arc::clone(&canary));
            Box::new(move |_: NonNull<Header>| canary.check("offerer"))
        };
        let lazy = Some(std::time::Duration::ZERO);
        let core = Arc::new(Core::new(Policy::Fifo, collector.clone(), lazy, Some(probe)));
        let local = collector.register();
        assert_eq!(core.pass(&arena, &local, 0, true), (0, 1), "the first pass offers nothing yet");

        let manager = {
            let (collector, arena, core) = (collector.clone(), Arc::clone(&arena), Arc::clone(&core));
            thread::spawn(move || {
                let local = collector.register();
                core.pass(&arena, &local, 0, true);
                collect(&local);
                collect(&local);
            })
        };

        drop_handle(&arena, header, &canary, Some(&pages));
        core.pass(&arena, &local, 0, false);
        collect(&local);
        collect(&local);
        manager.join().unwrap();

        let c = &arena.counters;
        let offers = c.offers.load(Relaxed);
        assert!(offers <= 1);
        seen.saw(if offers == 1 { 0 } else { 1 });
        assert_eq!(c.bytes.load(Relaxed), 0, "the bytes were not freed exactly once");
        assert_eq!((c.live.load(Relaxed), c.discarded_count.load(Relaxed)), (0, 0));
        assert_eq!(c.garbage.load(Relaxed), 0, "the dropped header was not retired exactly once");

        drop(local);
        drop(core);
        drop(collector);
        // SAFETY: every thread that could free the header is done.
        assert!(canary.with(|freed| unsafe { *freed }), "the header was never freed");
    });
    outcomes.assert_all_seen();
}

/// A handle is created (`Arena::register`: the header is built, counted and
/// pushed on the arena's intake) while the manager runs a reclaim pass that
/// wants its bytes, so the pass's drain of the intake races the push.
///
/// The racing pass either takes the header and reclaims it, or leaves it on
/// the intake for the next pass, which must; never both, never neither.
/// The manager's probe reads the header's canary through the pointer it
/// drained, so a header reaching the manager without the creator's writes
/// ordered before (arena INV-1) is rejected. Then the owner drops the
/// discarded handle and a sweep retires the header.
pub fn handle_created_while_the_manager_drains() {
    let outcomes = harness::Outcomes::new(&["the racing pass took it", "the next pass took it"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("handle created while the manager drains", 3, move || {
        let collector = Collector::new();
        let arena = Arc::new(Arena::new(usize::MAX, std::sync::Arc::new(Wake::default())));
        let probe = Box::new(|header: NonNull<Header>| {
            // SAFETY: the probe runs while the pass holds the header (its
            // claim and its epoch guard); the canary read is what loom checks.
            assert_alive(&unsafe { header.as_ref() }.canary, "manager")
        });
        let core = Arc::new(Core::new(Policy::Fifo, collector.clone(), None, Some(probe)));
        let creator = harness::spawn(&arena, |arena| {
            HeaderPtr(arena.register(Block { ptr: NonNull::dangling(), loc: Loc::Empty, cost: COST }))
        });
        let local = collector.register();
        let first = core.reclaim(&arena, &local, COST);
        let header = creator.join().unwrap();
        let second = core.reclaim(&arena, &local, COST);
        seen.saw(if first == COST { 0 } else { 1 });
        assert_eq!((first + second, first * second), (COST, 0), "the new handle was not reclaimed exactly once");

        // SAFETY: the owner's handle keeps the header alive until its drop.
        let canary: Canary = Arc::clone(&unsafe { header.0.as_ref() }.canary);
        drop_handle(&arena, header, &canary, None);
        assert_eq!(core.reclaim(&arena, &local, 0), 0);
        collect(&local);
        collect(&local);
        let c = &arena.counters;
        assert_eq!((c.bytes.load(Relaxed), c.live.load(Relaxed)), (0, 0), "the bytes were not freed exactly once");
        assert_eq!(c.garbage.load(Relaxed), 0, "the dropped header was not retired exactly once");
        assert_eq!(c.discarded_count.load(Relaxed), 1);

        drop(local);
        drop(core);
        drop(collector);
        // SAFETY: every thread that could free the header is done.
        assert!(canary.with(|freed| unsafe { *freed }), "the header was never freed");
    });
    outcomes.assert_all_seen();
}

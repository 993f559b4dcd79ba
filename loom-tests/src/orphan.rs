//! The owned-pin model: a guard that outlives its handle (state INV-8,
//! table INV-1).
//!
//! A cache's guard pins an allocation without borrowing its handle, so the
//! owner (the map) may drop the handle while the guard still reads the
//! bytes and, to unpin, the header. The owner's side is the shipped
//! `Arena::drop_owner` (what `Discardable::drop` and a cache's removal
//! call); the manager's side is the shipped `Core::reclaim` (drain, scan,
//! retire through the epoch, and free an orphan's bytes outside the lock).
//!
//! The guard reads the header's canary and the arena's byte count right
//! before its unpin (its last access). A table that retired the header, or
//! freed the bytes, before that unpin is rejected: the canary read races
//! with the header's free (a causality violation) or the guard sees the
//! bytes gone.

use core::ptr::NonNull;

use crossbeam_epoch::Collector;
use discardable::__loom::{Arena, Birth, Block, Core, Dropped, Header, Loc, Wake};
use discardable::Policy;
use loom::cell::UnsafeCell;
use loom::sync::atomic::Ordering::Relaxed;
use loom::sync::Arc;
use loom::thread;

use crate::harness;

const COST: usize = 4096;

#[derive(Clone, Copy)]
struct HeaderPtr(NonNull<Header>);

// SAFETY: headers are `Send + Sync`; the pointer is dereferenced only under
// the protocol the model checks.
unsafe impl Send for HeaderPtr {}

fn assert_alive(canary: &UnsafeCell<bool>, what: &str) {
    // SAFETY: a read; the only write is the header's destructor, and loom
    // checks that the two are ordered.
    canary.with(|freed| assert!(!unsafe { *freed }, "{what}: header read after its free"));
}

/// The owner drops its handle while an owned guard unpins and the manager
/// runs a reclaim pass. Whichever order, the bytes are freed exactly once
/// (by the owner if the guard was gone, by the table after the unpin if it
/// was not, or by the manager if it found the allocation unpinned and not
/// yet dropped), never while the guard reads them, and the header outlives
/// the guard's last access.
pub fn owner_drops_while_an_owned_guard_unpins() {
    let outcomes =
        harness::Outcomes::new(&["owner freed the bytes", "owner orphaned the bytes", "manager discarded it first"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("owner drops while an owned guard unpins", 2, move || {
        let collector = Collector::new();
        let arena = Arc::new(Arena::new(usize::MAX, std::sync::Arc::new(Wake::default())));
        let block = Block { ptr: NonNull::dangling(), loc: Loc::Empty, cost: COST };
        // Born pinned: the pin is the guard's.
        let header = HeaderPtr(arena.register_as(block, Birth { pinned: true, ..Birth::default() }));
        // SAFETY: just created and pinned by us.
        let canary = Arc::clone(&unsafe { header.0.as_ref() }.canary);
        let core = Arc::new(Core::new(Policy::Fifo, collector.clone(), None, None));

        let guard = {
            let (arena, canary) = (Arc::clone(&arena), Arc::clone(&canary));
            thread::spawn(move || {
                assert_alive(&canary, "guard");
                assert_eq!(arena.counters.bytes.load(Relaxed), COST, "the bytes were freed under a pin");
                // SAFETY: our pin keeps the header alive (INV-8); the unpin
                // is our last access.
                unsafe { header.0.as_ref() }.state.unpin();
            })
        };
        let owner = {
            let arena = Arc::clone(&arena);
            // SAFETY: this thread owns the handle and drops it once.
            thread::spawn(move || unsafe { arena.drop_owner(header.0) })
        };

        let local = collector.register();
        // A victim only if the guard unpinned and the owner had not dropped.
        let freed = core.reclaim(&arena, &local, COST);
        local.pin().flush();

        guard.join().unwrap();
        let dropped = owner.join().unwrap();
        seen.saw(match dropped {
            Dropped::OwnsBytes => 0,
            Dropped::Orphaned => 1,
            Dropped::AlreadyDiscarded => {
                assert_eq!(freed, COST, "discarded by nobody");
                2
            }
        });
        // A later sweep frees an orphan's bytes and retires the header.
        core.reclaim(&arena, &local, 0);
        local.pin().flush();
        local.pin().flush();
        let c = &arena.counters;
        assert_eq!(c.bytes.load(Relaxed), 0, "the bytes were not freed exactly once");
        assert_eq!((c.live.load(Relaxed), c.garbage.load(Relaxed)), (0, 0));
        assert_eq!(c.discarded_count.load(Relaxed), (freed / COST) as u64);
        drop(local);
        drop(core);
        drop(collector);
        // SAFETY: every thread that could free the header is done.
        assert!(canary.with(|freed| unsafe { *freed }), "the header was never freed");
    });
    outcomes.assert_all_seen();
}

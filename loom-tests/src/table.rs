//! Models of header lifetime: the owner drops its handle while the manager
//! drains, scans and claims (DESIGN.md protocol invariant 4, table INV-1).
//!
//! Headers are the shipped ones, published through the shipped arena intake
//! and owned by the shipped [`Table`]; the manager's side follows
//! `Core::reclaim` (src/manager/mod.rs) step for step, and the owner's side
//! follows `Discardable::drop` (src/handle/mod.rs). Both use a fresh
//! crossbeam-epoch [`Collector`] per execution, each thread with its own
//! registered handle, as crossbeam's own loom tests do.
//!
//! Under loom every header carries a canary, a loom `UnsafeCell<bool>` that
//! the header's destructor sets. The model keeps its own clone (so checking
//! it never reads the header) and reads it right before and right after
//! every read of a header the table may free: a read that races with the
//! free is a loom causality violation, one that follows it trips the flag.

use core::ptr::NonNull;

use crossbeam_epoch::{Collector, LocalHandle};
use discardable::__loom::{Arena, Block, Dropped, Header, Loc, Table, Wake};
use discardable::Policy;
use loom::cell::UnsafeCell;
use loom::sync::atomic::Ordering::Relaxed;
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::harness;

/// What the one allocation costs.
const COST: usize = 4096;
/// Victims claimed per table-lock acquisition, as in `Core::reclaim`.
const BATCH: usize = 64;

/// The model's own handle on a header's canary.
type Canary = Arc<UnsafeCell<bool>>;

/// A header pointer that may cross to another model thread.
#[derive(Debug, Clone, Copy)]
struct HeaderPtr(NonNull<Header>);

// SAFETY: headers are `Send + Sync`; the pointer is only dereferenced under
// the protocol the models check.
unsafe impl Send for HeaderPtr {}

/// Asserts that the header behind `canary` has not been freed, as a loom
/// read of the canary: any free not ordered after this point is rejected.
fn assert_alive(canary: &Canary, what: &str) {
    // SAFETY: a read; the only write is the header's destructor, and loom
    // checks the two are ordered.
    canary.with(|freed| assert!(!unsafe { *freed }, "{what}: header read after its free"));
}

/// `Discardable::drop`: copy what is needed from the header, count it as
/// garbage, mark it dropped, free the bytes if the owner won, count the
/// drop. The header is not touched after `mark_dropped`.
fn drop_handle(arena: &Arena, header: HeaderPtr, canary: &Canary) {
    assert_alive(canary, "owner");
    // SAFETY: the header is alive until the owner marks it dropped (INV-4);
    // the canary reads around this check exactly that.
    let h = unsafe { header.0.as_ref() };
    let block = Block { ptr: h.data, loc: h.loc, cost: h.cost };
    assert_alive(canary, "owner");
    arena.note_dropping();
    if h.state.mark_dropped() == Dropped::OwnsBytes {
        // SAFETY: the owner won, so the bytes are its own to free.
        unsafe { arena.release_dropped(block) };
    }
    arena.note_dropped();
}

/// `Core::reclaim`: under an epoch guard, drain and scan under the table
/// lock, then claim victims under the lock and release their bytes outside
/// it, until `target` bytes are freed. Returns the bytes freed.
fn reclaim(table: &Mutex<Table>, arena: &Arena, local: &LocalHandle, target: usize, canary: &Canary) -> usize {
    let guard = local.pin();
    {
        let mut table = table.lock().unwrap();
        table.drain(arena);
        let scan = table.scan(&guard);
        arena.counters.garbage.fetch_sub(scan.retired, Relaxed);
    }
    let mut freed = 0;
    let mut victims: Vec<NonNull<Header>> = Vec::new();
    while freed < target {
        victims.clear();
        table.lock().unwrap().claim_victims(target - freed, BATCH, &mut victims);
        if victims.is_empty() {
            break;
        }
        for header in &victims {
            assert_alive(canary, "reclaimer");
            // SAFETY: claimed, and `guard` holds the epoch back (table INV-1);
            // the canary reads around this check exactly that.
            freed += arena.release_discarded(unsafe { header.as_ref() });
            assert_alive(canary, "reclaimer");
        }
    }
    drop(guard);
    freed
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
        let table = Arc::new(Mutex::new(Table::new(Policy::Fifo)));
        let header = HeaderPtr(arena.register(Block { ptr: NonNull::dangling(), loc: Loc::Empty, cost: COST }));
        // SAFETY: just created; nobody else has it yet.
        let canary: Canary = Arc::clone(&unsafe { header.0.as_ref() }.canary);

        let manager = {
            let (collector, arena, table, canary) =
                (collector.clone(), Arc::clone(&arena), Arc::clone(&table), Arc::clone(&canary));
            thread::spawn(move || {
                let local = collector.register();
                let freed = reclaim(&table, &arena, &local, COST, &canary);
                collect(&local);
                collect(&local);
                freed
            })
        };

        let local = collector.register();
        drop_handle(&arena, header, &canary);
        let swept = reclaim(&table, &arena, &local, 0, &canary);
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
        drop(table);
        drop(collector);
        // SAFETY: every thread that could free the header is done.
        assert!(canary.with(|freed| unsafe { *freed }), "the header was never freed");
    });
}

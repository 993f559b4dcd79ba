//! Models of the allocator's remote-free protocol (src/alloc/span.rs INV-4,
//! INV-5, INV-6, and the remote branch of `heap::free_from`, which
//! `thread::free` calls): the quiet push (one CAS, the freer's last access)
//! onto an active span, the flagged push onto a parked one, and the owner's
//! park, which flags the remote list only while it is empty.
//!
//! The spans and the heap are the shipped ones, built in model memory by
//! [`ClassSpans`], whose header atomics (and the heap's `full_pending`) are
//! loom's under `cfg(loom)`; the remote freer runs `free`'s remote branch
//! (`free_remote`), the owner runs `Heap::push_current`, one turn of
//! `Heap::alloc_slow`'s refill loop (`Heap::park_full`) and its
//! `rescue_full` prologue. Under loom, releasing a span writes a loom cell
//! that the remote freer reads around each of its accesses to the header,
//! so a release not ordered after the freer's last access is a causality
//! violation (and one ordered before it trips an assertion); a thief's
//! discard writes a cell the owner's `collect` reads, so an owner that reads
//! a stolen span's lists is rejected the same way. The steal's age check
//! sees a clock that always says "old enough".

use discardable::__loom::{ClassSpans, Listed, SpanView, ACTIVE, PARKED, STOLEN};
use loom::sync::Arc;

use crate::harness::{self, Outcomes};

/// Span 0 holds one block, handed out; a remote thread frees it while the
/// owner makes span 1 current, which collects span 0 and releases it if it
/// is empty and no remote freer is in flight (span INV-5). The span is
/// active, so the free is a quiet push, never in flight: a collected span
/// is released at once, and the release follows the freer's push (its last
/// access to the header). No block is lost.
pub fn owner_collects_while_the_last_block_is_freed_remotely() {
    let outcomes = Outcomes::new(&["released", "collected nothing"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("owner collects while the last block is freed remotely", 3, move || {
        let spans = Arc::new(ClassSpans::new(1, &[(1, 1), (1, 0)]));
        spans.make_current(0);
        let freer = harness::spawn(&spans, move |spans| spans.free_remote(0, 0));
        // The owner: span 1 displaces span 0 as current.
        spans.push_current(1);
        let v = spans.view(0);
        freer.join().unwrap();
        let after = spans.view(0);
        assert_eq!(after.inflight, 0, "a remote freer never left");
        assert!(!after.flagged, "an active span's word was flagged: {after:?}");
        assert_eq!(after.pending, after.remote, "the word's count is off: {after:?}");
        if v.released {
            seen.saw(0);
            assert_eq!(after.listed, Listed::Nowhere, "a released span is still listed");
            assert_eq!(after.used, 0, "a span was released with a live block");
        } else {
            seen.saw(1);
            assert_eq!(v.used, 1, "an empty, quiet span was collected but kept: {v:?}");
            assert_eq!(after.listed, Listed::Current(0), "an unreleased span left the current list");
            assert_eq!((after.used, after.free, after.remote), (1, 0, 1), "the freed block was lost: {after:?}");
        }
    });
    outcomes.assert_all_seen();
}

/// Span 0 holds one block, handed out, and heads the owner's current list;
/// a remote thread frees it while the owner takes a turn of its refill
/// loop (`Heap::take_or_park`: it collects the block and hands it out
/// again, or finds the span full and parks it), then, as its next
/// `alloc_slow` would, rescues flagged full spans. Exactly one of the owner's unpark and the freer's
/// steal wins; a stolen span is released (once the thief is done) and never
/// collected or reused by the owner; no block is lost or stranded on a
/// parked span.
pub fn owner_parks_while_the_last_block_is_freed_remotely() {
    let outcomes = Outcomes::new(&["collected before parking", "unparked by the owner", "stolen by the freer"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("owner parks while the last block is freed remotely", 3, move || {
        let spans = Arc::new(ClassSpans::new(1, &[(1, 1)]));
        spans.make_current(0);
        let freer = harness::spawn(&spans, move |spans| spans.free_remote(0, 0));
        let taken = spans.take_or_park(0);
        let parked = taken.is_none();
        freer.join().unwrap();
        spans.rescue_if_pending(0);
        let v: SpanView = spans.view(0);
        assert_eq!(v.inflight, 0, "a remote freer never left");
        assert_ne!(v.kind, PARKED, "a remote free was stranded on a parked span: {v:?}");
        assert_eq!(v.pending, v.remote, "the word's count is off: {v:?}");
        match v.kind {
            STOLEN => {
                seen.saw(2);
                assert!(parked, "a span the owner never parked was stolen");
                assert!(v.discarded, "a steal skipped the discard");
                assert!(v.released, "a stolen span was never released: {v:?}");
                assert_eq!(v.listed, Listed::Nowhere, "a stolen span is still listed: {v:?}");
            }
            ACTIVE => {
                seen.saw(if parked { 1 } else { 0 });
                assert!(!v.discarded, "an active span's pages were discarded");
                assert!(!v.flagged && v.pending == 0, "a collected span's word is still flagged: {v:?}");
                if let Some(block) = taken {
                    // The owner collected the freed block and handed it out.
                    assert_eq!(block, 0, "the owner handed out a block that was never freed");
                    assert_eq!(
                        (v.listed, v.used, v.free, v.remote, v.released),
                        (Listed::Current(0), 1, 0, 0, false),
                        "the span of a handed-out block: {v:?}"
                    );
                } else if v.released {
                    assert_eq!((v.listed, v.used), (Listed::Nowhere, 0), "a released span is listed or live: {v:?}");
                } else {
                    assert_eq!(v.listed, Listed::Current(0), "an active span is not current: {v:?}");
                    assert_eq!((v.used, v.free, v.remote), (0, 1, 0), "the freed block was lost: {v:?}");
                }
            }
            kind => panic!("unknown span kind {kind}"),
        }
    });
    outcomes.assert_all_seen();
}

/// Span 0 has two blocks, both handed out, and is parked on its owner's
/// full list (its remote list flagged). A remote thread frees block 0 (the
/// first push onto the flagged list: in flight, it tells the owner) while
/// the owner frees block 1 locally, which takes the span back as current
/// without collecting it (its word stays flagged), then makes span 1
/// current, which collects span 0 and releases it if it is empty and no
/// remote freer is in flight. The span is never stolen (block 1 was freed
/// locally), never released under the freer, and the word's count is
/// exactly the flagged blocks on its list (INV-6).
pub fn owner_takes_back_a_parked_span_while_a_block_is_freed_remotely() {
    let outcomes = Outcomes::new(&["released", "collected, the freer still in flight", "pushed after the collect"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("owner takes back a parked span while a block is freed remotely", 3, move || {
        let spans = Arc::new(ClassSpans::new(1, &[(2, 2), (1, 0)]));
        spans.make_current(0);
        assert_eq!(spans.take_or_park(0), None, "setup: a full span must park");
        assert!(spans.view(0).flagged, "setup: a parked span's word must be flagged");
        let freer = harness::spawn(&spans, move |spans| spans.free_remote(0, 0));
        // The owner: a local free takes the span back; span 1 displaces it.
        spans.free(0, 0, 1);
        assert_eq!(spans.view(0).listed, Listed::Current(0), "a span taken back is not current");
        spans.push_current(1);
        let v = spans.view(0);
        freer.join().unwrap();
        let after = spans.view(0);
        assert_eq!(after.inflight, 0, "a remote freer never left");
        assert_eq!(after.kind, ACTIVE, "a span with a block freed locally was stolen: {after:?}");
        assert!(!after.discarded, "an active span's pages were discarded: {after:?}");
        assert_eq!(after.pending, after.remote, "the word's count is off: {after:?}");
        if v.released {
            seen.saw(0);
            assert_eq!(
                (after.listed, after.used),
                (Listed::Nowhere, 0),
                "a released span is listed or live: {after:?}"
            );
        } else {
            assert_eq!(after.listed, Listed::Current(0), "an unreleased span left the current list: {after:?}");
            match (after.used, after.free, after.remote) {
                (0, 2, 0) => seen.saw(1),
                (1, 1, 1) => {
                    // The collect took the flag with the empty list, so the
                    // push after it was a quiet one.
                    assert!(!after.flagged, "a flagged block escaped the collect: {after:?}");
                    seen.saw(2);
                }
                _ => panic!("a freed block was lost: {after:?}"),
            }
        }
    });
    outcomes.assert_all_seen();
}

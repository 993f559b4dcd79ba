//! Models of thread exit, span abandonment, adoption and the purge timer's
//! sweep (src/alloc/abandoned.rs AB-1..3, with span.rs INV-4 and INV-5).
//!
//! The heaps, spans and the abandoned set are the shipped ones: heaps and
//! spans built in model memory by [`ClassSpans`], the set one per execution
//! (a `loom::lazy_static`), its lock loom's mutex (`sync::SpinLock`). The
//! exiting thread runs `Heap::abandon`, the adopter `Heap::alloc_slow`
//! (whose page source is empty under loom, so it can only adopt), the
//! purge timer `Abandoned::sweep`, and remote freers `free`'s remote
//! branch. Releasing a span writes a loom cell that every remote freer
//! reads around its header accesses, and a thief's discard writes one that
//! every `collect` reads, so a release before a freer's last access, or a
//! collect of a stolen span's lists, is rejected.

use discardable::__loom::{ClassSpans, Listed, ACTIVE, PARKED, STOLEN};
use loom::sync::Arc;

use crate::harness::{self, Outcomes};

/// Span 0 holds one block, handed out, and is parked on its owner's full
/// list. A remote thread frees the block (stealing the span if it wins
/// the race against the owner) while the owner's thread exits and the
/// purge timer sweeps; then the timer sweeps once more. The span must be
/// released exactly once, after the freer's last access; a stolen span's
/// lists are never read; nothing stays listed.
pub fn thread_exits_while_its_parked_span_empties() {
    let outcomes = Outcomes::new(&[
        "stolen by the freer",
        "taken back by the exiting owner",
        "released before the last sweep",
        "released by the last sweep",
    ]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("thread exits while its parked span empties", 3, move || {
        let spans = Arc::new(ClassSpans::new(1, &[(1, 1)]));
        spans.make_current(0);
        assert_eq!(spans.take_or_park(0), None, "setup: a full span must park");
        let freer = harness::spawn(&spans, move |spans| spans.free_remote(0, 0));
        let sweeper = harness::spawn(&spans, move |spans| spans.sweep());
        spans.exit(0);
        freer.join().unwrap();
        sweeper.join().unwrap();
        let before = spans.view(0);
        spans.sweep();
        let v = spans.view(0);
        assert_eq!(v.inflight, 0, "a remote freer never left");
        assert_ne!(v.kind, PARKED, "an exited owner left its span parked: {v:?}");
        assert!(v.released, "an empty abandoned span was never released: {v:?}");
        assert_eq!(v.listed, Listed::Nowhere, "a released span is still listed: {v:?}");
        assert_eq!(v.owner, None, "an exited heap still owns a span: {v:?}");
        match v.kind {
            STOLEN => {
                seen.saw(0);
                assert!(v.discarded, "a steal skipped the discard: {v:?}");
            }
            ACTIVE => {
                seen.saw(1);
                assert!(!v.discarded, "an active span's pages were discarded: {v:?}");
                assert_eq!((v.used, v.remote), (0, 0), "the freed block was not collected: {v:?}");
            }
            kind => panic!("unknown span kind {kind}"),
        }
        seen.saw(if before.released { 2 } else { 3 });
    });
    outcomes.assert_all_seen();
}

/// Span 0 has two blocks, both handed out, and heads its owner's current
/// list. Its owner's thread exits while a remote thread frees block 0 and
/// heap 1's thread allocates, which can only adopt. The adopter may take
/// the span only once a free block was collected, must hand out exactly
/// that block (never block 1, still live), and then owns the span; an
/// unadopted span stays abandoned and is released once its blocks are
/// freed and the timer sweeps.
pub fn a_thread_adopts_while_a_block_is_freed_remotely() {
    let outcomes = Outcomes::new(&["adopted, the freed block reused", "nothing adoptable yet"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("a thread adopts while a block is freed remotely", 3, move || {
        let spans = Arc::new(ClassSpans::new(2, &[(2, 2)]));
        spans.make_current(0);
        let exiting = harness::spawn(&spans, move |spans| spans.exit(0));
        let freer = harness::spawn(&spans, move |spans| spans.free_remote(0, 0));
        let got = spans.alloc(1);
        exiting.join().unwrap();
        freer.join().unwrap();
        let v = spans.view(0);
        assert_eq!(v.inflight, 0, "a remote freer never left");
        assert!(!v.released && !v.discarded, "a span with live blocks was released or stolen: {v:?}");
        match got {
            Some(block) => {
                seen.saw(0);
                assert_eq!(block, (0, 0), "the adopter handed out a block that was never freed");
                assert_eq!(
                    (v.owner, v.listed, v.used, v.free, v.remote),
                    (Some(1), Listed::Current(1), 2, 0, 0),
                    "the adopted span: {v:?}"
                );
                // The adopter frees both blocks: its own span, so locally.
                spans.free(1, 0, 1);
                spans.free(1, 0, 0);
                let v = spans.view(0);
                assert_eq!((v.used, v.free, v.remote), (0, 2, 0), "a local free was lost: {v:?}");
                assert_eq!(v.listed, Listed::Current(1), "the adopter's current span left its list: {v:?}");
            }
            None => {
                seen.saw(1);
                assert_eq!((v.owner, v.listed), (None, Listed::Abandoned), "an unadopted span: {v:?}");
                assert!(
                    [(1, 1, 0), (2, 0, 1)].contains(&(v.used, v.free, v.remote)),
                    "block 0 was lost, or block 1 freed: {v:?}"
                );
                // Block 1 is freed too (a remote free: the span is not
                // heap 1's), then the timer sweeps.
                spans.free(1, 0, 1);
                spans.sweep();
                let v = spans.view(0);
                assert!(v.released, "an empty abandoned span was not released: {v:?}");
                assert_eq!(v.listed, Listed::Nowhere, "a released span is still listed: {v:?}");
            }
        }
    });
    outcomes.assert_all_seen();
}

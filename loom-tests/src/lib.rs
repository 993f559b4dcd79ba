//! Loom models of `discardable`'s pin/discard protocol (DESIGN.md, "The
//! pin/discard protocol").
//!
//! The models drive the shipped protocol code, which the crate exposes under
//! `cfg(loom)` as the hidden module `discardable::__loom`: the state word,
//! the header, the arena's intake and the manager's table, with
//! crossbeam-epoch's own loom support on. Run them with `.ci/loom.sh`;
//! without `--cfg loom` this crate is empty.
//!
//! - `state`: the state word alone, with the allocation's bytes modelled
//!   as a loom `UnsafeCell`, so loom's causality checking rejects any read
//!   under a pin that is not ordered before the discarder's write.
//! - `table`: an owner dropping its handle while the manager scans, claims
//!   and reads headers under an epoch guard; a header read that races with
//!   (or follows) the header's free is rejected.
//!
//! Built with `--cfg discardable_broken` as well, the crate's `try_discard`
//! becomes a check followed by a separate store; `tests/broken.rs` runs
//! `state::two_pinners_and_a_discarder` against it and must fail.

#[cfg(loom)]
pub mod harness;
#[cfg(loom)]
pub mod state;
#[cfg(loom)]
pub mod table;

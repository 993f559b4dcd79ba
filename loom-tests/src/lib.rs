//! Loom models of `discardable`'s shared-state protocols (DESIGN.md, "The
//! pin/discard protocol" and "Reclaim modes").
//!
//! The models drive the shipped protocol code, which the crate exposes under
//! `cfg(loom)` as the hidden module `discardable::__loom`: the state word,
//! the header, the arena's intake, the manager's `Core` (its table, its
//! epoch collector and `Core::reclaim` itself) and lazy mode's offer and
//! pin slow path, with crossbeam-epoch's own loom support on. Run them with
//! `.ci/loom.sh`; without `--cfg loom` this crate is empty.
//!
//! - `state`: the state word alone, with the allocation's bytes modelled
//!   as a loom `UnsafeCell`, so loom's causality checking rejects any read
//!   under a pin that is not ordered before the discarder's write.
//! - `table`: a handle created while the manager's pass drains the arena's
//!   intake, and an owner dropping its handle while the manager's `Core`
//!   drains, scans, claims and reads headers under an epoch guard, or, in
//!   lazy mode, offers the allocation; a header read that races with (or
//!   follows) the header's free is rejected, and so is an offer that
//!   touches pages the owner freed.
//! - `lazy`: lazy mode's offer, revival, a simulated kernel's reclaim of an
//!   offered page, the owner's drop and a discarder, on a lazy arena whose
//!   pages loom sees through the crate's loom page source
//!   (`__loom::pages`).
//! - `orphan`: an owned guard (a cache's) unpinning while its owner drops
//!   the handle and the manager sweeps (src/handle/state.rs INV-8): the
//!   bytes and the header must outlive the guard's last access and be freed
//!   exactly once.
//! - `remote_free`: the allocator's remote-free protocol (src/alloc/span.rs
//!   INV-4, INV-5): an owner collecting, or parking, a class span while a
//!   remote thread frees its last live block, on the shipped span and heap
//!   code (`__loom::ClassSpans`); a release before the freer's last header
//!   access, a steal and an unpark that both win, an owner reading a stolen
//!   span, or a lost block is rejected.
//! - `group`: the group registry's slot protocol (src/group/slot.rs
//!   INV-1..3): an owner publishing under a reader (a read never mixes two
//!   publications), and a taker racing the owner for an expired slot
//!   (exactly one wins; readers see only the winner's fields).
//! - `abandon`: thread exit, abandonment, adoption and the purge timer's
//!   sweep (src/alloc/abandoned.rs AB-1..3) on the same shipped code, with
//!   the abandoned set and its lock loom's; a release before a freer's last
//!   access, a collect of a stolen span, an adopter handing out a live
//!   block, or a span never released is rejected.
//!
//! Each protocol has a deliberately broken variant, a cfg switch with which
//! `.ci/loom.sh` builds `tests/broken.rs` and which loom must reject:
//! - `--cfg discardable_broken`: `try_discard` is a check followed by a
//!   separate store (`state::two_pinners_and_a_discarder`,
//!   `state::two_discarders_race` and `lazy::discard_racing_a_reviver` must
//!   fail);
//! - `--cfg discardable_broken_lazy`: `try_begin_revive` is a check followed
//!   by a separate `fetch_or` (`lazy::two_pinners_revive_once` must fail);
//! - `--cfg discardable_broken_epoch`: `Core::pass` drops its epoch guard
//!   before it releases its victims
//!   (`table::last_handle_dropped_while_the_manager_scans` must fail);
//! - `--cfg discardable_broken_inflight`: the remote freer leaves
//!   `remote_inflight` right after its push, before its last header access
//!   (`remote_free::owner_takes_back_a_parked_span_while_a_block_is_freed_remotely`
//!   must fail);
//! - `--cfg discardable_broken_park`: the owner flags a parking span's remote
//!   list whatever it holds
//!   (`remote_free::owner_parks_while_the_last_block_is_freed_remotely` must
//!   fail);
//! - `--cfg discardable_broken_adopt`: the abandoned set collects stolen
//!   spans too (`abandon::thread_exits_while_its_parked_span_empties` must
//!   fail);
//! - `--cfg discardable_broken_restore`: a failed lazy offer restores the
//!   saved words with plain stores (`lazy::partly_failed_offer_racing_a_pinner`
//!   must fail);
//! - `--cfg discardable_broken_intake`: `Arena::register` publishes the
//!   header without Release (`table::handle_created_while_the_manager_drains`
//!   must fail);
//! - `--cfg discardable_broken_orphan`: the table retires a dropped header
//!   whatever its pins (`orphan::owner_drops_while_an_owned_guard_unpins`
//!   must fail);
//! - `--cfg discardable_broken_unpin`: `unpin` is Relaxed
//!   (`state::unpin_racing_discard` must fail);
//! - `--cfg discardable_broken_claim`: a lazy reviver writes the saved words
//!   back without claiming each page from the kernel first
//!   (`lazy::kernel_reclaim_racing_revivers` must fail);
//! - `--cfg discardable_broken_group`: a slot's publication writes the
//!   fields without the seqlock's `INIT` mark
//!   (`group::publish_while_reading` and `group::taker_races_the_owner`
//!   must fail);
//! - `--cfg discardable_broken_end_offer`: `end_offer` is Relaxed
//!   (`lazy::offer_racing_a_pinner`, `lazy::failed_offer_racing_a_pinner`,
//!   `lazy::drop_racing_an_offer` and
//!   `table::last_handle_dropped_while_the_manager_offers` must fail);
//! - `--cfg discardable_broken_quiet`: a remote freer's quiet push is
//!   Relaxed
//!   (`remote_free::owner_collects_while_the_last_block_is_freed_remotely`
//!   must fail);
//! - `--cfg discardable_broken_adopt_full`: an adopter takes an abandoned
//!   span with no free block
//!   (`abandon::a_thread_adopts_while_a_block_is_freed_remotely` must fail).

#[cfg(loom)]
pub mod abandon;
#[cfg(loom)]
pub mod group;
#[cfg(loom)]
pub mod harness;
#[cfg(loom)]
pub mod lazy;
#[cfg(loom)]
pub mod orphan;
#[cfg(loom)]
pub mod remote_free;
#[cfg(loom)]
pub mod state;
#[cfg(loom)]
pub mod table;

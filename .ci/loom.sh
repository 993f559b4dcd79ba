#!/usr/bin/env bash
# Loom model checks of the shared-state protocols (loom-tests/).
#
# 1. The models, against the shipped protocols: every one must pass.
# 2. Each protocol's deliberately broken variant (a cfg switch), built on its
#    own: loom must reject each model that covers it, with a causality
#    violation or a failed model assertion, never a build error.
#    - `--cfg discardable_broken`: `try_discard` checks, then stores.
#    - `--cfg discardable_broken_lazy`: `try_begin_revive` checks, then
#      sets REVIVING with a separate `fetch_or`.
#    - `--cfg discardable_broken_epoch`: `Core::pass` drops its epoch guard
#      before releasing the victims it claimed.
#    - `--cfg discardable_broken_inflight`: a remote freer leaves
#      `remote_inflight` right after its push, before its last access to the
#      span header.
#    - `--cfg discardable_broken_park`: the owner flags a parking span's
#      remote list whatever it holds, stranding a block pushed just before.
#    - `--cfg discardable_broken_adopt`: the abandoned set collects a stolen
#      span's lists (which its thief gave back to the OS).
#    - `--cfg discardable_broken_restore`: a failed lazy offer restores the
#      saved words with plain stores, over pages the kernel may have taken.
#    - `--cfg discardable_broken_intake`: `Arena::register` publishes a new
#      header on the intake without Release.
#    - `--cfg discardable_broken_orphan`: the table retires a dropped header
#      while an owned guard still pins it.
#    - `--cfg discardable_broken_unpin`: `unpin` is Relaxed.
#    - `--cfg discardable_broken_claim`: a lazy reviver writes the saved
#      words back without claiming each page from the kernel first.
#    - `--cfg discardable_broken_group`: a group slot's publication writes
#      its fields without the seqlock's INIT mark.
#    - `--cfg discardable_broken_end_offer`: `end_offer` is Relaxed, so
#      neither a reviver, nor a pinner that waited out a failed offer, nor
#      the owner's drop is ordered after the offer.
#    - `--cfg discardable_broken_quiet`: a remote freer's quiet push is
#      Relaxed, so the owner may release the span under the freer's last
#      access.
#    - `--cfg discardable_broken_adopt_full`: an adopter takes a full
#      abandoned span (no free block) and parks it on its own full list.
#
# Each build has its own target directory, so none invalidates the normal
# build or another (RUSTFLAGS differ). Each model has its own preemption
# bound (3 for the state-word, lazy-mode, remote-free and abandonment
# models, 2 for the epoch model);
# setting LOOM_MAX_PREEMPTIONS overrides it for all of them (the epoch model
# takes about 3 minutes at 3). Extra arguments go to the first `cargo test`
# (e.g. `--test lazy`). To see the interleaving behind a failure, rerun that
# test with LOOM_LOG=trace LOOM_LOCATION=1.
set -euo pipefail
cd "$(dirname "$0")/.."

flags="--cfg loom --cfg crossbeam_loom -C debug-assertions=on"
start=$SECONDS

echo "== loom models (must pass)"
RUSTFLAGS="${RUSTFLAGS:-} $flags" CARGO_TARGET_DIR=target/loom \
    cargo test --release --no-fail-fast -p loom-tests "$@" -- --nocapture

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# reject CFG TEST REASONS: builds tests/broken.rs with `--cfg CFG` and
# requires its one test TEST to fail with a message matching the extended
# regex REASONS.
reject() {
    local cfg=$1 test=$2 reasons=$3
    echo "== broken variant --cfg $cfg (must be rejected by $test)"
    local env=(env "RUSTFLAGS=${RUSTFLAGS:-} $flags --cfg $cfg" "CARGO_TARGET_DIR=target/loom-$cfg")
    # Build first, so that a build failure can never pass for a rejection.
    "${env[@]}" cargo test --release -p loom-tests --test broken --no-run
    if "${env[@]}" cargo test --release -p loom-tests --test broken -- --exact "$test" --nocapture >"$log" 2>&1; then
        cat "$log"
        echo "FAIL: loom accepted the broken variant --cfg $cfg" >&2
        exit 1
    fi
    if ! grep -q "test result: FAILED. 0 passed; 1 failed" "$log" || ! grep -Eq "$reasons" "$log"; then
        cat "$log"
        echo "FAIL: the broken variant --cfg $cfg failed, but not by loom rejecting the model" >&2
        exit 1
    fi
    echo "rejected as expected:"
    grep -E -m 3 "panicked at|$reasons" "$log" | sed 's/^/    /'
}

reject discardable_broken broken_discard_is_rejected \
    "Causality violation|a pinned reader saw discarded bytes|a pin succeeded after the discard|two discarders both won"
reject discardable_broken broken_discard_is_rejected_by_two_discarders \
    "Causality violation|two discarders both won|not exactly one discard in total|a pin failed but nobody discarded"
reject discardable_broken broken_discard_is_rejected_by_a_reviver \
    "Causality violation|a pinned reader saw|still offered after a revival or a discard|a pin succeeded after the discard"
reject discardable_broken_lazy broken_revive_is_rejected \
    "Causality violation|a pin failed though the kernel took no page|not exactly one reviver|a pinned reader saw"
reject discardable_broken_epoch broken_epoch_guard_is_rejected \
    "Causality violation|header read after its free"
reject discardable_broken_inflight broken_inflight_is_rejected \
    "Causality violation|a remote freer touched a released span"
reject discardable_broken_park broken_park_is_rejected \
    "Causality violation|a remote free was stranded on a parked span"
reject discardable_broken_adopt broken_adopt_is_rejected \
    "Causality violation|the owner collected a stolen span"
reject discardable_broken_restore broken_restore_is_rejected \
    "Causality violation|a pinned reader saw|a failed offer lost a page"
reject discardable_broken_intake broken_intake_is_rejected \
    "Causality violation|header read after its free"
reject discardable_broken_orphan broken_orphan_is_rejected \
    "Causality violation|header read after its free|the bytes were freed under a pin"
reject discardable_broken_unpin broken_unpin_is_rejected \
    "Causality violation"
reject discardable_broken_claim broken_claim_is_rejected \
    "Causality violation|the kernel's reclaim and a pin must exclude each other|a taken page left the allocation alive|a pin succeeded after the kernel's discard|the kernel took a revived page"

reject discardable_broken_group broken_group_slot_is_rejected \
    "Causality violation|a reader accepted fields from two publications"
reject discardable_broken_group broken_group_slot_is_rejected_by_a_taker \
    "Causality violation|the loser wrote over the winner's fields|exactly one of the owner and the taker must win|the slot is the winner's"
reject discardable_broken_end_offer broken_end_offer_is_rejected_by_a_pinner \
    "Causality violation|a reviver found no saved words|a pinned reader saw"
reject discardable_broken_end_offer broken_end_offer_is_rejected_by_a_failed_offer \
    "Causality violation|a pinned reader saw"
reject discardable_broken_end_offer broken_end_offer_is_rejected_by_a_drop \
    "Causality violation|the bytes after they were freed"
reject discardable_broken_end_offer broken_end_offer_is_rejected_by_the_last_handle_drop \
    "Causality violation|the bytes after they were freed|header read after its free"
reject discardable_broken_quiet broken_quiet_push_is_rejected \
    "Causality violation|a remote freer touched a released span"
reject discardable_broken_adopt_full broken_adopt_full_is_rejected \
    "Causality violation|an unadopted span|the adopted span"

echo "== loom checks passed in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Loom model checks of the pin/discard protocol (loom-tests/).
#
# 1. The models, against the shipped protocol: every one must pass.
# 2. The same pinners-and-discarder model against a deliberately broken
#    `try_discard` (`--cfg discardable_broken`): loom must reject it, with a
#    causality violation or a failed model assertion, not a build error.
#
# Each build has its own target directory, so neither invalidates the normal
# build nor the other (RUSTFLAGS differ). Each model has its own preemption
# bound (3 for the state-word models, 2 for the epoch model); setting
# LOOM_MAX_PREEMPTIONS overrides it for all of them (the epoch model takes
# about 3 minutes at 3). Extra arguments go to the first `cargo test` (e.g.
# `--test pin_discard`). To see the interleaving behind a failure, rerun that
# test with LOOM_LOG=trace LOOM_LOCATION=1.
set -euo pipefail
cd "$(dirname "$0")/.."

flags="--cfg loom --cfg crossbeam_loom -C debug-assertions=on"
start=$SECONDS

echo "== loom models (must pass)"
RUSTFLAGS="${RUSTFLAGS:-} $flags" CARGO_TARGET_DIR=target/loom \
    cargo test --release --no-fail-fast -p loom-tests "$@" -- --nocapture

echo "== broken protocol variant (must be rejected)"
export RUSTFLAGS="${RUSTFLAGS:-} $flags --cfg discardable_broken"
export CARGO_TARGET_DIR=target/loom-broken
# Build first, so that a build failure can never pass for a rejection.
cargo test --release -p loom-tests --test broken --no-run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if cargo test --release -p loom-tests --test broken -- --nocapture >"$log" 2>&1; then
    cat "$log"
    echo "FAIL: loom accepted the broken protocol variant" >&2
    exit 1
fi
if ! grep -q "test result: FAILED. 0 passed; 1 failed" "$log" \
    || ! grep -Eq "Causality violation|a pinned reader saw discarded bytes|a pin succeeded after the discard|two discarders both won" "$log"; then
    cat "$log"
    echo "FAIL: the broken variant failed, but not by loom rejecting the model" >&2
    exit 1
fi
echo "broken variant rejected as expected:"
grep -E -m 3 "panicked at|Causality violation|a pinned reader|a pin succeeded|two discarders" "$log" | sed 's/^/    /'

echo "== loom checks passed in $((SECONDS - start)) s"

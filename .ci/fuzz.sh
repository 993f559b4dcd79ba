#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets for a bounded time.
#
#   FUZZ_SECS=30           seconds per target (libFuzzer -max_total_time)
#   FUZZ_TOOLCHAIN=stable  rustup toolchain to build with (RUSTC_BOOTSTRAP=1
#                          lets stable accept the nightly flags cargo-fuzz uses)
#   CARGO_FUZZ_VERSION     cargo-fuzz to install when it is missing
#
# Each target fuzzes a throw-away copy of its seed corpus
# (fuzz/corpus/<target>/seed-*) in a temp dir, so the repo is not touched.
# Prints the executions per target; exits non-zero if any target crashed
# (the crashing input is copied to fuzz/artifacts/<target>/, which git
# ignores, and printed decoded).
set -euo pipefail

FUZZ_SECS=${FUZZ_SECS:-30}
FUZZ_TOOLCHAIN=${FUZZ_TOOLCHAIN:-stable}
# 0.13.2 builds with `--locked` on rustc 1.95 stable (about a minute on 2 cores).
CARGO_FUZZ_VERSION=${CARGO_FUZZ_VERSION:-0.13.2}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export RUSTC_BOOTSTRAP=1
cargo=(cargo)
rustc=(rustc)
if command -v rustup >/dev/null 2>&1; then
    cargo=(cargo "+$FUZZ_TOOLCHAIN")
    rustc=(rustc "+$FUZZ_TOOLCHAIN")
fi

if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    t0=$(date +%s)
    "${cargo[@]}" install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
    echo "fuzz: cargo-fuzz installed in $(($(date +%s) - t0)) s"
fi
echo "fuzz: $("${cargo[@]}" fuzz --version), $("${rustc[@]}" --version)"

work=$(mktemp -d "${TMPDIR:-/tmp}/discardable-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

t0=$(date +%s)
if ! "${cargo[@]}" fuzz build >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    echo "fuzz: cargo fuzz build failed"
    exit 1
fi
echo "fuzz: targets built in $(($(date +%s) - t0)) s"
host=$("${rustc[@]}" -vV | sed -n 's/^host: //p')

failed=()
total=0
for src in fuzz/fuzz_targets/*.rs; do
    target=$(basename "$src" .rs)
    corpus="$work/corpus/$target"
    artifacts="$work/artifacts/$target"
    log="$work/$target.log"
    mkdir -p "$corpus" "$artifacts"
    if compgen -G "fuzz/corpus/$target/seed-*" >/dev/null; then
        cp fuzz/corpus/"$target"/seed-* "$corpus"/
    fi
    echo "fuzz: $target for ${FUZZ_SECS} s from $(ls "$corpus" | wc -l) seed(s)"
    set +e
    "${cargo[@]}" fuzz run "$target" "$corpus" -- \
        -max_total_time="$FUZZ_SECS" -timeout=60 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    # libFuzzer's own summary lines: "#N DONE ...", "Done N runs in S second(s)"
    # and the final stats.
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
    execs=$(grep -Eo '^stat::number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1)
    execs=${execs:-0}
    total=$((total + execs))
    echo "fuzz: $target: $execs executions, exit $rc, corpus grew to $(ls "$corpus" | wc -l) input(s)"
    if [ "$rc" -ne 0 ]; then
        failed+=("$target")
        bin="fuzz/target/$host/release/$target"
        echo "fuzz: $target FAILED; what it reported:"
        if grep -qE 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' "$log"; then
            grep -E -A4 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY: ' "$log" | head -n 40 || true
        else
            tail -n 40 "$log"
        fi
        mkdir -p "fuzz/artifacts/$target"
        for crash in "$artifacts"/*; do
            [ -e "$crash" ] || continue
            name=$(basename "$crash")
            cp "$crash" "fuzz/artifacts/$target/"
            echo "fuzz: crashing input kept as fuzz/artifacts/$target/$name"
            # Minimise it (bounded), then print it decoded (libfuzzer-sys
            # writes the input's Debug form to RUST_LIBFUZZER_DEBUG_PATH).
            min="fuzz/artifacts/$target/minimized-$name"
            cp "$crash" "$min"
            timeout 300 "$bin" -minimize_crash=1 -runs="${FUZZ_TMIN_RUNS:-2000}" \
                -exact_artifact_path="$min" "$crash" >"$work/tmin.log" 2>&1 || true
            echo "fuzz: minimized to $min ($(wc -c <"$min") bytes, base64 $(base64 -w0 "$min")):"
            RUST_LIBFUZZER_DEBUG_PATH="$work/decoded.txt" "$bin" "$min" >/dev/null 2>&1 || true
            { head -c 20000 "$work/decoded.txt" | tr -s ' \n' ' '; } 2>/dev/null || true
            echo
            "$bin" "$min" 2>&1 | grep -E -A4 'panicked at' | head -n 8 || true
            echo "fuzz: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run $target $min"
        done
    fi
done

echo "fuzz: $total executions in all"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz: crashed: ${failed[*]}"
    exit 1
fi
echo "fuzz: no crash"

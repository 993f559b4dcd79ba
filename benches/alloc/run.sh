#!/usr/bin/env bash
# Builds the allocator comparison in release mode and runs it: every
# allocator binary on every workload, interleaved over rounds, then the
# table of ratios and the RSS lifecycle. Arguments go to `compare`
# (--rounds N, --only w1,w2, --no-rss). About five minutes on two cores.
#
# `run.sh --external DIR [--passes N]` instead builds the LD_PRELOAD
# library and runs every executable in DIR (allocator benchmark programs
# built elsewhere, e.g. mimalloc-bench's) under glibc, mimalloc, jemalloc
# (if their shared libraries are found) and ours: see external.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
if [[ "${1:-}" == "--external" ]]; then
    [[ $# -ge 2 ]] || { echo "usage: $0 --external DIR [--passes N]" >&2; exit 2; }
    dir="$2"
    shift 2
    cargo build --release -p discardable-malloc
    exec python3 benches/alloc/external.py "$target/release/libdiscardable_malloc.so" "$dir" "$@"
fi
cargo build --release -p alloc-bench --bins
exec "$target/release/compare" "$@"

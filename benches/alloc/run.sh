#!/usr/bin/env bash
# Builds the allocator comparison in release mode and runs it: every
# allocator binary on every workload, interleaved over rounds, then the
# table of ratios and the RSS lifecycle. Arguments go to `compare`
# (--rounds N, --only w1,w2, --no-rss). About five minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p alloc-bench --bins
exec "$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/compare" "$@"

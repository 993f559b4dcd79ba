#!/usr/bin/env bash
# Reruns every figure README.md gives for `Cache` and prints the tables, in
# the order README shows them. Takes about 6 minutes on 2 cores; check
# `cat /proc/loadavg` first and quote it with the figures (the script
# prints it around each bench).
#
#   bash benches/cache_report.sh            # all of it
#   bash benches/cache_report.sh --quick    # shorter runs, same tables
#
# It also writes the demo's plot to docs/pressure_demo.svg (the one README
# shows) and its CSV to target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)

echo "== load: $(cat /proc/loadavg)"
echo "== hit cost (cargo bench --bench cache_hit)"
cargo bench --bench cache_hit -- "${quick[@]}" | grep -E '^\||goal|load'
echo "== read_at against memcpy (cargo bench --bench read_at)"
cargo bench --bench read_at -- "${quick[@]}" | grep -E '^\||goal|load'
echo "== hit ratio at equal entry capacity (cargo bench --bench hit_ratio)"
cargo bench --bench hit_ratio -- "${quick[@]}" | grep -E '^\||load'
echo "== strong bytes per entry (cargo bench --bench cache_overhead)"
cargo bench --bench cache_overhead | grep -E '^\||goal|ours:'
echo "== the pressure demo (cargo run --release --example pressure_demo)"
mkdir -p target/demo
(cd target/demo && cargo run --release --manifest-path ../../Cargo.toml --example pressure_demo | sed -n '/^phase/,$p')
cp target/demo/pressure_demo.svg docs/pressure_demo.svg
echo "== load: $(cat /proc/loadavg)"

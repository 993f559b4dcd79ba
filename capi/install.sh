#!/usr/bin/env bash
# Builds and installs the C interface under PREFIX (default /usr/local):
#   PREFIX/lib/libdiscardable_capi.so, PREFIX/lib/libdiscardable_capi.a,
#   PREFIX/include/discardable.h, PREFIX/include/discardable.hpp,
#   PREFIX/lib/pkgconfig/discardable.pc
# Then: cc prog.c $(pkg-config --cflags --libs discardable)
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not searched),
# or statically: cc prog.c $(pkg-config --cflags discardable) \
#   PREFIX/lib/libdiscardable_capi.a -lpthread -ldl -lm
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-/usr/local}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
cargo build --release -p discardable-capi
target="${CARGO_TARGET_DIR:-target}/release"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' capi/Cargo.toml | head -1)"
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/libdiscardable_capi.so" "$prefix/lib/"
install -m 0644 "$target/libdiscardable_capi.a" "$prefix/lib/"
install -m 0644 include/discardable.h include/discardable.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" capi/discardable.pc.in >"$prefix/lib/pkgconfig/discardable.pc"
echo "installed under $prefix"

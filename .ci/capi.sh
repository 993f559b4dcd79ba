#!/usr/bin/env bash
# The C and C++ interface (issue #14, capi/): called by .ci/run.
#
# 1. gcc, g++, their sanitizer runtimes and pkg-config (apt-get if missing),
#    and cbindgen at the pinned version (cargo install if missing).
# 2. include/discardable.h is what cbindgen makes from capi/ now, and it
#    compiles as C11 and C++17 (with discardable.hpp) under -Wall -Wextra
#    -Werror -pedantic.
# 3. libdiscardable_capi.so exports exactly the dsc_* functions of the
#    issue, nothing else; neither library defines malloc.
# 4. The C test (capi/tests/capi_test.c) runs plainly, under ASan+UBSan
#    (with LeakSanitizer: every handle and hit released), statically linked
#    against the .a with -lpthread -ldl -lm, and under the LD_PRELOAD
#    allocator; the C++ test of discardable.hpp plainly and under ASan+UBSan.
# 5. examples/c/tile_cache.c, built through capi/install.sh and pkg-config,
#    runs and checks its own tiles.
# 6. The bench: dsc_read through the C boundary against read_at (printed).
#
# About 3 minutes on 2 cores once the workspace is built (plus about 3 for
# cbindgen on a machine that does not have it yet).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> capi: %s\n' "$*"; }
CBINDGEN_VERSION=0.29.4

step "tools"
need=""
for tool in gcc g++ pkg-config nm; do command -v "$tool" >/dev/null 2>&1 || need="$need $tool"; done
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
echo 'int main(void) { return 0; }' >"$probe/p.c"
if [ -z "$need" ] && ! gcc -fsanitize=address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    need="$need sanitizers"
fi
if [ -n "$need" ]; then
    echo "installing:$need"
    apt-get update -qq
    apt-get install -y -qq gcc g++ pkg-config binutils libasan8 libubsan1 >/dev/null
fi
gcc -fsanitize=address,undefined "$probe/p.c" -o "$probe/p"
if [ "$(cbindgen --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]; then
    # --debug: builds in half the time; the header takes it a second.
    cargo install cbindgen --locked --debug --version "$CBINDGEN_VERSION"
fi

step "include/discardable.h matches cbindgen's output"
cbindgen -q --config capi/cbindgen.toml --crate discardable-capi -o "$probe/discardable.h" capi
if ! diff -u include/discardable.h "$probe/discardable.h"; then
    echo "include/discardable.h is stale: regenerate it with" >&2
    echo "  cbindgen --config capi/cbindgen.toml --crate discardable-capi -o include/discardable.h capi" >&2
    exit 1
fi

step "the headers compile as C11 and C++17"
echo '#include <discardable.h>' >"$probe/h.c"
gcc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -c "$probe/h.c" -o "$probe/h.o"
printf '#include <discardable.h>\n#include <discardable.hpp>\n' >"$probe/h.cpp"
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -c "$probe/h.cpp" -o "$probe/hpp.o"

step "build (debug for the tests, release for the example and the static link)"
cargo build -p discardable-capi
cargo build --release -p discardable-capi -p discardable-malloc
debug=target/debug
release=target/release

step "exported symbols: exactly the dsc_* functions"
expected="dsc_alloc dsc_cache_free dsc_cache_get dsc_cache_new dsc_cache_put dsc_cache_release dsc_cache_remove
dsc_compare dsc_config_init dsc_fill dsc_find dsc_free dsc_global dsc_global_init dsc_is_discarded dsc_manager_free
dsc_manager_new dsc_manager_stats dsc_move dsc_pin dsc_read dsc_reclaim dsc_size dsc_status_str dsc_unpin dsc_write"
for lib in "$debug" "$release"; do
    got="$(nm -D --defined-only "$lib/libdiscardable_capi.so" | awk '{print $3}' | sort | tr '\n' ' ')"
    want="$(echo $expected | tr ' ' '\n' | sort | tr '\n' ' ')"
    if [ "$got" != "$want" ]; then
        echo "$lib/libdiscardable_capi.so exports: $got" >&2
        echo "expected: $want" >&2
        exit 1
    fi
    if nm --defined-only "$lib/libdiscardable_capi.a" 2>/dev/null | grep -Eq ' T (malloc|free|calloc|realloc)$'; then
        echo "$lib/libdiscardable_capi.a defines an allocator" >&2
        exit 1
    fi
done
echo "26 symbols, all dsc_*; no malloc"

cflags=(-Wall -Wextra -Werror -Iinclude -g)
san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
dyn=(-L"$debug" -ldiscardable_capi -lpthread -Wl,-rpath,"$PWD/$debug")
out="$probe"

step "C test, plain"
gcc -std=c11 "${cflags[@]}" capi/tests/capi_test.c "${dyn[@]}" -o "$out/capi_test"
"$out/capi_test"

step "C test, AddressSanitizer + UndefinedBehaviorSanitizer (and LeakSanitizer)"
gcc -std=c11 "${cflags[@]}" "${san[@]}" capi/tests/capi_test.c "${dyn[@]}" -o "$out/capi_test_san"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 "$out/capi_test_san"

step "C test, statically linked (release .a, -lpthread -ldl -lm)"
gcc -std=c11 "${cflags[@]}" -O2 capi/tests/capi_test.c "$release/libdiscardable_capi.a" -lpthread -ldl -lm \
    -o "$out/capi_test_static"
"$out/capi_test_static"

step "C test under LD_PRELOAD=libdiscardable_malloc.so (both libraries in one process)"
DISCARDABLE_STATS=1 LD_PRELOAD="$PWD/$release/libdiscardable_malloc.so" "$out/capi_test_static" 2>"$out/preload.err"
grep -q '^discardable-malloc: .*allocs=[1-9]' "$out/preload.err" || { cat "$out/preload.err" >&2; exit 1; }

step "C++ test of discardable.hpp, plain and under ASan+UBSan"
g++ -std=c++17 "${cflags[@]}" capi/tests/hpp_test.cpp "${dyn[@]}" -o "$out/hpp_test"
"$out/hpp_test"
g++ -std=c++17 "${cflags[@]}" "${san[@]}" capi/tests/hpp_test.cpp "${dyn[@]}" -o "$out/hpp_test_san"
ASAN_OPTIONS=detect_leaks=1 "$out/hpp_test_san"

step "examples/c/tile_cache.c through install.sh and pkg-config (README's build line)"
bash capi/install.sh "$out/prefix" >/dev/null
export PKG_CONFIG_PATH="$out/prefix/lib/pkgconfig"
# shellcheck disable=SC2046 # pkg-config's output is a list of flags
cc -std=c11 -O2 -Wall -Wextra -Werror examples/c/tile_cache.c $(pkg-config --cflags --libs discardable) \
    -Wl,-rpath,"$out/prefix/lib" -o "$out/tile_cache"
"$out/tile_cache"

step "bench: dsc_read (C boundary) vs read_at, 64 B"
DSC_BENCH_ROUNDS="${DSC_BENCH_ROUNDS:-11}" DSC_BENCH_READS="${DSC_BENCH_READS:-1000000}" \
    cargo bench -p discardable-capi --bench read

step "all C and C++ checks passed"

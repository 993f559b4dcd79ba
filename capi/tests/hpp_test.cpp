// The C++ RAII wrapper (include/discardable.hpp): handles free themselves,
// pin guards unpin, both move, and guards and hits outlive their owners.
// Built and run by .ci/capi.sh, plainly and under ASan+UBSan (whose leak
// check proves every handle and hit was released). Prints
// "N passed, M failed".
#include <discardable.hpp>

#include <cstdio>
#include <cstring>
#include <utility>

static int passed, failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

static dsc::manager own_manager() {
    dsc_config cfg;
    dsc_config_init(&cfg);
    cfg.limit = 64 << 20;
    dsc_status s = DSC_INVALID;
    dsc::manager m = dsc::manager::start(&cfg, &s);
    CHECK(s == DSC_OK && m);
    return m;
}

static void handles_free_themselves() {
    dsc::manager m = own_manager();
    {
        dsc::handle h = m.alloc(1000);
        CHECK(h && h.size() == 1000 && !h.discarded());
        CHECK(m.stats().allocations == 1);
        dsc::handle moved = std::move(h);
        CHECK(!h && moved);
        CHECK(m.stats().allocations == 1);
        dsc::handle other = m.alloc(10);
        other = std::move(moved); // frees the 10-byte one
        CHECK(m.stats().allocations == 1);
        CHECK(other.size() == 1000);
    }
    CHECK(m.stats().allocations == 0);
    dsc::handle empty;
    CHECK(!empty && empty.size() == 0 && empty.discarded());
    CHECK(!empty.pin());
    dsc::handle failed_alloc = m.alloc(static_cast<std::size_t>(-1));
    CHECK(!failed_alloc);
}

static void guards_pin_and_unpin() {
    dsc::manager m = own_manager();
    dsc::handle h = m.alloc(4096);
    CHECK(h.fill(0, 'x', 4096) == DSC_OK);
    {
        dsc::pin_guard a = h.pin();
        dsc::pin_guard b = h.pin();
        CHECK(a && b && a.data() == b.data() && a.size() == 4096);
        CHECK(m.reclaim(static_cast<std::size_t>(-1)) == 0);
        dsc::pin_guard c = std::move(a);
        CHECK(!a && c.data() == b.data());
        b.reset();
        CHECK(!b);
        CHECK(m.reclaim(static_cast<std::size_t>(-1)) == 0); // c still pins
        CHECK(c.data()[4095] == 'x');
    }
    CHECK(m.reclaim(static_cast<std::size_t>(-1)) >= 4096);
    CHECK(h.discarded());
    CHECK(!h.pin());
    char buf[4];
    CHECK(h.read(0, buf, 4) == DSC_DISCARDED);
}

static void guards_outlive_handles() {
    dsc::manager m = own_manager();
    dsc::pin_guard kept;
    {
        dsc::handle h = m.alloc(64);
        CHECK(h.write(0, "outlives", 8) == DSC_OK);
        kept = h.pin();
    } // dsc_free with a pin outstanding
    CHECK(kept && std::memcmp(kept.data(), "outlives", 8) == 0);
    CHECK(m.stats().allocations == 1);
    kept.reset(); // the last unpin releases it
    CHECK(m.stats().allocations == 0);
}

static void the_cache() {
    dsc::manager m = own_manager();
    dsc_status s = DSC_INVALID;
    dsc::cache bad = dsc::cache::create(0, m.get(), &s);
    CHECK(!bad && s == DSC_INVALID);
    dsc::cache_hit survivor;
    {
        dsc::cache c = dsc::cache::create(1 << 20, m.get(), &s);
        CHECK(c && s == DSC_OK);
        CHECK(c.put("tile:1", "pixels") == DSC_OK);
        dsc::cache_hit hit = c.get("tile:1");
        CHECK(hit && hit.view() == "pixels");
        CHECK(!c.get("tile:2"));
        survivor = std::move(hit);
        CHECK(!hit && survivor.size() == 6);
        CHECK(c.remove("tile:1") == DSC_OK);
        CHECK(c.remove("tile:1") == DSC_NOT_FOUND);
    } // the cache is freed; the hit keeps its bytes
    CHECK(survivor.view() == "pixels");
}

int main() {
    handles_free_themselves();
    guards_pin_and_unpin();
    guards_outlive_handles();
    the_cache();
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

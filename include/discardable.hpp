/*
 * discardable.hpp: header-only RAII for C++ over discardable.h (C++17).
 *
 *   dsc::manager    owns a dsc_manager (dsc_manager_free on destruction)
 *   dsc::handle     owns a dsc_handle: it frees itself
 *   dsc::pin_guard  one pin, unpinned on destruction
 *   dsc::cache      owns a dsc_cache
 *   dsc::cache_hit  one pinned cache hit, released on destruction
 *
 * All are move-only, never throw, and report failures as the C functions
 * do (an empty object, or a dsc_status). A pin_guard or cache_hit may
 * outlive the handle or cache it came from: the C library keeps the bytes
 * until the last unpin or release.
 *
 *   dsc::handle h = dsc::handle::alloc(4096);   // global manager
 *   if (dsc::pin_guard pin = h.pin()) {
 *       std::memset(pin.data(), 0, pin.size()); // pinned: cannot vanish
 *   } else {
 *       // discarded under pressure: recompute
 *   }
 */
#ifndef DISCARDABLE_HPP
#define DISCARDABLE_HPP

#include <discardable.h>

#include <cstddef>
#include <string_view>
#include <utility>

namespace dsc {

/** A pin on a handle's bytes; empty if the pin failed (discarded). */
class pin_guard {
  public:
    pin_guard() noexcept = default;
    /** Pins `h` (NULL or discarded: an empty guard). */
    explicit pin_guard(dsc_handle *h) noexcept : h_(h), p_(h ? dsc_pin(h) : nullptr) {
        if (p_ == nullptr) h_ = nullptr;
    }
    pin_guard(pin_guard &&o) noexcept : h_(std::exchange(o.h_, nullptr)), p_(std::exchange(o.p_, nullptr)) {}
    pin_guard &operator=(pin_guard &&o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    pin_guard(const pin_guard &) = delete;
    pin_guard &operator=(const pin_guard &) = delete;
    ~pin_guard() { reset(); }

    /** Unpins now (the guard becomes empty). */
    void reset() noexcept {
        if (p_ != nullptr) dsc_unpin(h_);
        h_ = nullptr;
        p_ = nullptr;
    }
    /** Whether the bytes are pinned. */
    explicit operator bool() const noexcept { return p_ != nullptr; }
    /** The pinned bytes (nullptr if empty). */
    unsigned char *data() const noexcept { return static_cast<unsigned char *>(p_); }
    /** Their size (0 if empty). */
    std::size_t size() const noexcept { return h_ ? dsc_size(h_) : 0; }

  private:
    dsc_handle *h_ = nullptr;
    void *p_ = nullptr;
};

/** A discardable allocation that frees itself. */
class handle {
  public:
    handle() noexcept = default;
    /** Adopts `h` (from dsc_alloc), freeing it on destruction. */
    explicit handle(dsc_handle *h) noexcept : h_(h) {}
    /** `size` zero bytes in `m` (nullptr: the global manager); empty on failure. */
    static handle alloc(std::size_t size, dsc_manager *m = nullptr) noexcept { return handle(dsc_alloc(m, size)); }
    handle(handle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    handle &operator=(handle &&o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    ~handle() { reset(); }

    /** Frees the handle now (pins still held keep it until they go). */
    void reset() noexcept { dsc_free(std::exchange(h_, nullptr)); }
    /** Gives the C handle up without freeing it. */
    dsc_handle *release() noexcept { return std::exchange(h_, nullptr); }
    dsc_handle *get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    std::size_t size() const noexcept { return dsc_size(h_); }
    bool discarded() const noexcept { return dsc_is_discarded(h_) != 0; }
    /** Pins the bytes for the guard's lifetime (empty guard once discarded). */
    pin_guard pin() const noexcept { return pin_guard(h_); }

    dsc_status read(std::size_t off, void *dst, std::size_t n) const noexcept { return dsc_read(h_, off, dst, n); }
    dsc_status write(std::size_t off, const void *src, std::size_t n) const noexcept {
        return dsc_write(h_, off, src, n);
    }
    dsc_status fill(std::size_t off, int byte, std::size_t n) const noexcept { return dsc_fill(h_, off, byte, n); }

  private:
    dsc_handle *h_ = nullptr;
};

/** A manager of its own (never the global one, which is never freed). */
class manager {
  public:
    manager() noexcept = default;
    /** Starts a manager as `cfg` says (nullptr: defaults); `*status` tells why not. */
    static manager start(const dsc_config *cfg, dsc_status *status = nullptr) noexcept {
        dsc_manager *m = nullptr;
        dsc_status s = dsc_manager_new(cfg, &m);
        if (status != nullptr) *status = s;
        return manager(s == DSC_OK ? m : nullptr);
    }
    manager(manager &&o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    manager &operator=(manager &&o) noexcept {
        if (this != &o) {
            dsc_manager_free(m_);
            m_ = std::exchange(o.m_, nullptr);
        }
        return *this;
    }
    manager(const manager &) = delete;
    manager &operator=(const manager &) = delete;
    ~manager() { dsc_manager_free(m_); }

    dsc_manager *get() const noexcept { return m_; }
    explicit operator bool() const noexcept { return m_ != nullptr; }
    handle alloc(std::size_t size) const noexcept { return handle::alloc(size, m_); }
    std::size_t reclaim(std::size_t bytes) const noexcept { return dsc_reclaim(m_, bytes); }
    dsc_stats stats() const noexcept {
        dsc_stats s{};
        s.struct_size = sizeof s;
        dsc_manager_stats(m_, &s);
        return s;
    }

  private:
    explicit manager(dsc_manager *m) noexcept : m_(m) {}
    dsc_manager *m_ = nullptr;
};

/** A pinned cache hit; empty for a miss. */
class cache_hit {
  public:
    cache_hit() noexcept = default;
    cache_hit(cache_hit &&o) noexcept
        : r_(std::exchange(o.r_, nullptr)), v_(std::exchange(o.v_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    cache_hit &operator=(cache_hit &&o) noexcept {
        if (this != &o) {
            dsc_cache_release(r_);
            r_ = std::exchange(o.r_, nullptr);
            v_ = std::exchange(o.v_, nullptr);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    cache_hit(const cache_hit &) = delete;
    cache_hit &operator=(const cache_hit &) = delete;
    ~cache_hit() { dsc_cache_release(r_); }

    explicit operator bool() const noexcept { return r_ != nullptr; }
    const unsigned char *data() const noexcept { return static_cast<const unsigned char *>(v_); }
    std::size_t size() const noexcept { return n_; }
    std::string_view view() const noexcept { return std::string_view(static_cast<const char *>(v_), n_); }

  private:
    friend class cache;
    dsc_cache_ref *r_ = nullptr;
    const void *v_ = nullptr;
    std::size_t n_ = 0;
};

/** A byte-string cache that frees itself (hits outlive it). */
class cache {
  public:
    cache() noexcept = default;
    /** A cache of `capacity` bytes in `m` (nullptr: global); `*status` tells why not. */
    static cache create(std::size_t capacity, dsc_manager *m = nullptr, dsc_status *status = nullptr) noexcept {
        dsc_cache *c = nullptr;
        dsc_status s = dsc_cache_new(m, capacity, &c);
        if (status != nullptr) *status = s;
        return cache(s == DSC_OK ? c : nullptr);
    }
    cache(cache &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    cache &operator=(cache &&o) noexcept {
        if (this != &o) {
            dsc_cache_free(c_);
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    cache(const cache &) = delete;
    cache &operator=(const cache &) = delete;
    ~cache() { dsc_cache_free(c_); }

    explicit operator bool() const noexcept { return c_ != nullptr; }
    dsc_cache *get() const noexcept { return c_; }
    dsc_status put(std::string_view key, std::string_view value) const noexcept {
        return dsc_cache_put(c_, key.data(), key.size(), value.data(), value.size());
    }
    /** The value under `key`, pinned while the hit lives; empty if absent or discarded. */
    cache_hit get(std::string_view key) const noexcept {
        cache_hit hit;
        if (dsc_cache_get(c_, key.data(), key.size(), &hit.v_, &hit.n_, &hit.r_) != DSC_OK) hit = cache_hit();
        return hit;
    }
    dsc_status remove(std::string_view key) const noexcept { return dsc_cache_remove(c_, key.data(), key.size()); }

  private:
    explicit cache(dsc_cache *c) noexcept : c_(c) {}
    dsc_cache *c_ = nullptr;
};

} // namespace dsc

#endif /* DISCARDABLE_HPP */

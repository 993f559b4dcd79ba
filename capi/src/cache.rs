//! The byte-string cache: `dsc_cache_new`, `_free`, `_put`, `_get`,
//! `_release` and `_remove`, a [`Cache`] from byte strings to byte strings
//! (what Apple's libcache offers C programs).
//!
//! A `dsc_cache` is a boxed `Cache<Box<[u8]>, [u8]>` in a manager's budget,
//! with a capacity of its own inside it; a `dsc_cache_ref` is a boxed
//! [`CacheGuard`], the crate's owned pin, so a hit's bytes stay valid until
//! `dsc_cache_release` whatever happens to the cache meanwhile (a new put
//! of the key, its removal, `dsc_cache_free`, `dsc_manager_free`).
//!
//! Must never: hand out bytes without a guard behind them.

use core::ffi::c_void;
use core::ptr;

use discardable::{Cache, CacheGuard, Error};

use crate::boundary::guarded;
use crate::manager::{self, dsc_manager};
use crate::types::dsc_status;

/// A cache of byte-string keys and values in discardable memory. Opaque to
/// C.
#[derive(Debug)]
pub struct dsc_cache {
    cache: Cache<Box<[u8]>, [u8]>,
}

/// A pinned hit from `dsc_cache_get`: its bytes stay valid until
/// `dsc_cache_release`. Opaque to C.
#[derive(Debug)]
pub struct dsc_cache_ref {
    _guard: CacheGuard<[u8]>,
}

/// `n` bytes at `p` as a slice (`p` may be NULL, or anything, when `n` is
/// 0), or `DSC_INVALID` for a NULL `p` with `n > 0`.
///
/// # Safety
///
/// `p` is NULL or readable for `n` bytes for the returned lifetime.
unsafe fn bytes<'a>(p: *const c_void, n: usize) -> Result<&'a [u8], dsc_status> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(dsc_status::DSC_INVALID);
    }
    // SAFETY: non-null and readable for `n` bytes (contract).
    Ok(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n) })
}

/// Folds a result into its status.
fn status(r: Result<(), dsc_status>) -> dsc_status {
    r.err().unwrap_or(dsc_status::DSC_OK)
}

/// Makes a cache whose values cost at most `capacity` bytes (counted as
/// discardable memory: whole pages for large values, the slot size for
/// small ones), inside the budget of `m` (NULL: the global manager), which
/// may also discard them under pressure. `DSC_INVALID` for a NULL `out` or
/// `capacity = 0`; `DSC_NO_MEMORY` if the global manager could not start.
///
/// # Safety
///
/// `m` is NULL or a live manager; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dsc_cache_new(m: *mut dsc_manager, capacity: usize, out: *mut *mut dsc_cache) -> dsc_status {
    guarded("dsc_cache_new", || {
        status((|| {
            if out.is_null() || capacity == 0 {
                return Err(dsc_status::DSC_INVALID);
            }
            // SAFETY: NULL or live, per the contract.
            let m = unsafe { manager::or_global(m) }.ok_or(dsc_status::DSC_NO_MEMORY)?;
            let cache =
                Cache::builder().manager(&m.manager).capacity(capacity).build().map_err(|e| dsc_status::from(&e))?;
            // SAFETY: non-null (checked) and writable (contract).
            unsafe { out.write(Box::into_raw(Box::new(dsc_cache { cache }))) };
            Ok(())
        })())
    })
}

/// Frees a cache and every value in it; hits not released yet keep their
/// bytes until `dsc_cache_release`. NULL is a no-op.
///
/// # Safety
///
/// `c` is NULL or a cache from `dsc_cache_new` not freed yet, used by no
/// other thread during or after the call.
#[no_mangle]
pub unsafe extern "C" fn dsc_cache_free(c: *mut dsc_cache) {
    guarded("dsc_cache_free", || {
        if !c.is_null() {
            // SAFETY: made by `Box::into_raw` in `dsc_cache_new`, freed once,
            // here (contract).
            drop(unsafe { Box::from_raw(c) });
        }
    })
}

/// Copies `vlen` bytes at `val` into the cache under the `klen` bytes at
/// `key` (both copied; either may be empty), replacing any value the key
/// had. Beyond the capacity it still returns `DSC_OK`: cold values are
/// dropped first, so the capacity holds again when it returns (± one
/// value). `DSC_INVALID` for a NULL cache, a NULL pointer with a non-zero
/// length, or a value larger than the whole capacity; `DSC_NO_MEMORY` if
/// no memory could be had.
///
/// # Safety
///
/// `c` is NULL or a live cache; `key` and `val` are NULL or readable for
/// `klen` and `vlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn dsc_cache_put(
    c: *mut dsc_cache,
    key: *const c_void,
    klen: usize,
    val: *const c_void,
    vlen: usize,
) -> dsc_status {
    guarded("dsc_cache_put", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let c = unsafe { c.as_ref() }.ok_or(dsc_status::DSC_INVALID)?;
            // SAFETY: readable for their lengths (contract).
            let (key, val) = unsafe { (bytes(key, klen)?, bytes(val, vlen)?) };
            c.cache.insert(Box::from(key), val).map_err(|e: Error| dsc_status::from(&e))
        })())
    })
}

/// Looks `key` up and pins its value: `DSC_OK` with `*val` and `*vlen`
/// its bytes, valid until `dsc_cache_release(*ref)`; `DSC_NOT_FOUND` if the
/// key is absent or its value was discarded (then `*val`, `*vlen` and
/// `*ref` are NULL, 0, NULL). `DSC_INVALID` for a NULL cache, a NULL
/// output, or a NULL key with `klen > 0`.
///
/// # Safety
///
/// `c` is NULL or a live cache; `key` is NULL or readable for `klen`
/// bytes; `val`, `vlen` and `ref` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dsc_cache_get(
    c: *mut dsc_cache,
    key: *const c_void,
    klen: usize,
    val: *mut *const c_void,
    vlen: *mut usize,
    r#ref: *mut *mut dsc_cache_ref,
) -> dsc_status {
    guarded("dsc_cache_get", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let c = unsafe { c.as_ref() }.ok_or(dsc_status::DSC_INVALID)?;
            if val.is_null() || vlen.is_null() || r#ref.is_null() {
                return Err(dsc_status::DSC_INVALID);
            }
            // SAFETY: readable for `klen` bytes (contract).
            let key = unsafe { bytes(key, klen) }?;
            let (p, n, g) = match c.cache.get(key) {
                Some(guard) => {
                    let (p, n) = (guard.as_ptr().cast::<c_void>(), guard.len());
                    (p, n, Box::into_raw(Box::new(dsc_cache_ref { _guard: guard })))
                }
                None => (ptr::null(), 0, ptr::null_mut()),
            };
            // SAFETY: the three outputs are non-null (checked) and writable
            // (contract).
            unsafe {
                val.write(p);
                vlen.write(n);
                r#ref.write(g);
            }
            if g.is_null() {
                Err(dsc_status::DSC_NOT_FOUND)
            } else {
                Ok(())
            }
        })())
    })
}

/// Releases a hit from `dsc_cache_get`: its bytes may go from now on.
/// NULL is a no-op.
///
/// # Safety
///
/// `r` is NULL or a hit not released yet.
#[no_mangle]
pub unsafe extern "C" fn dsc_cache_release(r: *mut dsc_cache_ref) {
    guarded("dsc_cache_release", || {
        if !r.is_null() {
            // SAFETY: made by `Box::into_raw` in `dsc_cache_get`, released
            // once, here (contract).
            drop(unsafe { Box::from_raw(r) });
        }
    })
}

/// Removes `key`'s value: `DSC_OK` if it had a live one, `DSC_NOT_FOUND`
/// if it had none (or only a discarded one). Hits already handed out keep
/// their bytes. `DSC_INVALID` for a NULL cache or a NULL key with
/// `klen > 0`.
///
/// # Safety
///
/// `c` is NULL or a live cache; `key` is NULL or readable for `klen` bytes.
#[no_mangle]
pub unsafe extern "C" fn dsc_cache_remove(c: *mut dsc_cache, key: *const c_void, klen: usize) -> dsc_status {
    guarded("dsc_cache_remove", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let c = unsafe { c.as_ref() }.ok_or(dsc_status::DSC_INVALID)?;
            // SAFETY: readable for `klen` bytes (contract).
            let key = unsafe { bytes(key, klen) }?;
            if c.cache.remove(key) {
                Ok(())
            } else {
                Err(dsc_status::DSC_NOT_FOUND)
            }
        })())
    })
}

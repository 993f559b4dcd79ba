//! The offset operations (the seed's access "by offset, never by a raw
//! address"): `dsc_read`, `dsc_write`, `dsc_move`, `dsc_compare`,
//! `dsc_find`, `dsc_fill`, the `memcpy`, `memmove`, `memcmp`, `memchr` and
//! `memset` of discardable memory.
//!
//! Each one, in this order: `DSC_INVALID` for a NULL handle or a NULL
//! buffer with `n > 0`; `DSC_OUT_OF_RANGE` for a range past the end (or
//! whose end overflows), checked before the bytes are pinned, so also on a
//! discarded handle; then it pins for its own duration (the seed's
//! implicit "resume") and returns `DSC_DISCARDED`, touching no caller
//! buffer, once the bytes are gone. Writes pin too, so they never race a
//! discard.
//!
//! Must never: hold a pin past the call (the [`OpPin`] guard gives it back
//! on every path), or touch a byte outside the checked range.

use core::cmp::Ordering;
use core::ffi::{c_int, c_void};
use core::ops::Range;
use core::ptr;

use discardable::Discardable;

use crate::boundary::guarded;
use crate::handle::dsc_handle;
use crate::types::dsc_status;

/// `off..off + n` if it fits in `len` bytes.
#[inline(always)]
fn span(off: usize, n: usize, len: usize) -> Result<Range<usize>, dsc_status> {
    match off.checked_add(n) {
        Some(end) if end <= len => Ok(off..end),
        _ => Err(dsc_status::DSC_OUT_OF_RANGE),
    }
}

/// `DSC_INVALID` for a NULL buffer that must hold `n > 0` bytes.
#[inline(always)]
fn buffer<T>(p: *const T, n: usize) -> Result<(), dsc_status> {
    if p.is_null() && n > 0 {
        Err(dsc_status::DSC_INVALID)
    } else {
        Ok(())
    }
}

/// The handle behind `h`, or `DSC_INVALID` for NULL.
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[inline(always)]
unsafe fn handle<'a>(h: *const dsc_handle) -> Result<&'a dsc_handle, dsc_status> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { dsc_handle::get(h) }.ok_or(dsc_status::DSC_INVALID)
}

/// Folds an operation's result into its status.
#[inline(always)]
fn status(r: Result<(), dsc_status>) -> dsc_status {
    match r {
        Ok(()) => dsc_status::DSC_OK,
        Err(s) => s,
    }
}

/// A raw pin for the duration of one operation, given back on drop (also
/// if the operation unwinds).
struct OpPin<'a> {
    bytes: &'a Discardable<[u8]>,
    /// The first byte (valid for `bytes.len()` bytes while pinned).
    base: *mut u8,
}

impl<'a> OpPin<'a> {
    /// Pins `bytes`, or `DSC_DISCARDED`.
    #[inline(always)]
    fn new(bytes: &'a Discardable<[u8]>) -> Result<Self, dsc_status> {
        let p = bytes.pin_raw().ok_or(dsc_status::DSC_DISCARDED)?;
        Ok(Self { bytes, base: p.as_ptr().cast() })
    }

    /// The pinned bytes of `range` (checked against the length by the
    /// caller), as a pointer valid for reads and writes.
    #[inline(always)]
    fn at(&self, range: &Range<usize>) -> *mut u8 {
        debug_assert!(range.end <= self.bytes.len());
        self.base.wrapping_add(range.start)
    }
}

impl Drop for OpPin<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `new` took this one raw pin and nothing else gives it back;
        // the operation's accesses are over.
        unsafe { self.bytes.unpin_raw() };
    }
}

/// Copies `n` bytes at offset `off` of `h` into `dst` (`memcpy` out).
///
/// # Safety
///
/// `h` is NULL or a live handle; `dst` is NULL or writable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn dsc_read(h: *mut dsc_handle, off: usize, dst: *mut c_void, n: usize) -> dsc_status {
    guarded("dsc_read", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let h = unsafe { handle(h) }?;
            buffer(dst, n)?;
            let range = span(off, n, h.bytes.len())?;
            let pin = OpPin::new(&h.bytes)?;
            if n > 0 {
                // SAFETY: the range is within the pinned bytes (checked
                // above), `dst` is non-null (checked) and writable for `n`
                // bytes (contract); `ptr::copy` allows the caller's buffer to
                // overlap them (as if memmove).
                unsafe { ptr::copy(pin.at(&range), dst.cast::<u8>(), n) };
            }
            Ok(())
        })())
    })
}

/// Copies `n` bytes from `src` to offset `off` of `h` (`memcpy` in).
///
/// # Safety
///
/// `h` is NULL or a live handle; `src` is NULL or readable for `n` bytes.
/// Another thread reading the same bytes meanwhile is the caller's data
/// race.
#[no_mangle]
pub unsafe extern "C" fn dsc_write(h: *mut dsc_handle, off: usize, src: *const c_void, n: usize) -> dsc_status {
    guarded("dsc_write", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let h = unsafe { handle(h) }?;
            buffer(src, n)?;
            let range = span(off, n, h.bytes.len())?;
            let pin = OpPin::new(&h.bytes)?;
            if n > 0 {
                // SAFETY: the range is within the pinned bytes, which a raw
                // pin lets us write (no Rust guard of this handle exists: the
                // C boundary never makes one); `src` is non-null (checked)
                // and readable for `n` bytes (contract).
                unsafe { ptr::copy(src.cast::<u8>(), pin.at(&range), n) };
            }
            Ok(())
        })())
    })
}

/// Copies `n` bytes from offset `src_off` to offset `dst_off` of `h`; the
/// ranges may overlap (`memmove`).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn dsc_move(h: *mut dsc_handle, dst_off: usize, src_off: usize, n: usize) -> dsc_status {
    guarded("dsc_move", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let h = unsafe { handle(h) }?;
            let len = h.bytes.len();
            let src = span(src_off, n, len)?;
            let dst = span(dst_off, n, len)?;
            let pin = OpPin::new(&h.bytes)?;
            // SAFETY: both ranges are within the pinned bytes (checked);
            // `ptr::copy` is memmove.
            unsafe { ptr::copy(pin.at(&src), pin.at(&dst), n) };
            Ok(())
        })())
    })
}

/// Compares the `n` bytes at offset `off` of `h` with `buf`, as unsigned
/// bytes, and sets `*result` like `memcmp` (negative, zero or positive:
/// here -1, 0 or 1).
///
/// # Safety
///
/// `h` is NULL or a live handle; `buf` is NULL or readable for `n` bytes;
/// `result` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dsc_compare(
    h: *mut dsc_handle,
    off: usize,
    buf: *const c_void,
    n: usize,
    result: *mut c_int,
) -> dsc_status {
    guarded("dsc_compare", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let h = unsafe { handle(h) }?;
            buffer(buf, n)?;
            if result.is_null() {
                return Err(dsc_status::DSC_INVALID);
            }
            let range = span(off, n, h.bytes.len())?;
            let order = {
                let pin = OpPin::new(&h.bytes)?;
                // SAFETY: the range is pinned and within the bytes (checked).
                let ours = unsafe { core::slice::from_raw_parts(pin.at(&range), n) };
                // SAFETY: `buf` is readable for `n` bytes (contract), non-null
                // when `n > 0`; for `n == 0` a dangling pointer stands in.
                let theirs = unsafe { core::slice::from_raw_parts(nonnull_or_dangling(buf), n) };
                ours.cmp(theirs)
            };
            let r = match order {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
            // SAFETY: non-null (checked) and writable (contract).
            unsafe { result.write(r) };
            Ok(())
        })())
    })
}

/// Finds the first byte equal to `(unsigned char)byte` in the `n` bytes at
/// offset `off` of `h` (`memchr`): `DSC_OK` with `*pos` its offset from the
/// start of the allocation, or `DSC_NOT_FOUND` (`*pos` untouched).
///
/// # Safety
///
/// `h` is NULL or a live handle; `pos` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dsc_find(
    h: *mut dsc_handle,
    off: usize,
    byte: c_int,
    n: usize,
    pos: *mut usize,
) -> dsc_status {
    guarded("dsc_find", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let h = unsafe { handle(h) }?;
            if pos.is_null() {
                return Err(dsc_status::DSC_INVALID);
            }
            let range = span(off, n, h.bytes.len())?;
            let found = {
                let pin = OpPin::new(&h.bytes)?;
                // SAFETY: the range is pinned and within the bytes (checked).
                let ours = unsafe { core::slice::from_raw_parts(pin.at(&range), n) };
                ours.iter().position(|&b| b == byte as u8)
            };
            let i = found.ok_or(dsc_status::DSC_NOT_FOUND)?;
            // SAFETY: non-null (checked) and writable (contract).
            unsafe { pos.write(off + i) };
            Ok(())
        })())
    })
}

/// Sets the `n` bytes at offset `off` of `h` to `(unsigned char)byte`
/// (`memset`).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn dsc_fill(h: *mut dsc_handle, off: usize, byte: c_int, n: usize) -> dsc_status {
    guarded("dsc_fill", || {
        status((|| {
            // SAFETY: NULL or live, per the contract.
            let h = unsafe { handle(h) }?;
            let range = span(off, n, h.bytes.len())?;
            let pin = OpPin::new(&h.bytes)?;
            // SAFETY: the range is pinned and within the bytes (checked).
            unsafe { ptr::write_bytes(pin.at(&range), byte as u8, n) };
            Ok(())
        })())
    })
}

/// `p` as a byte pointer, or a dangling (non-null, aligned) one for NULL,
/// for a slice of zero bytes.
#[inline(always)]
fn nonnull_or_dangling(p: *const c_void) -> *const u8 {
    if p.is_null() {
        ptr::NonNull::<u8>::dangling().as_ptr()
    } else {
        p.cast()
    }
}

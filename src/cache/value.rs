//! What a [`Cache`](super::Cache) can hold: [`CacheValue`], implemented for
//! `T: Copy`, `[T]` with `T: Copy`, and `str`.
//!
//! Owns: turning a borrowed value into bytes to copy into discardable memory
//! and back into a typed pointer. Values are copied, never moved, so no
//! destructor is ever needed (a discarded value's destructor could never
//! run).
//!
//! Must never: be implemented outside this crate (the trait is sealed), or
//! describe a layout other than the value's own.

use core::ptr::NonNull;

mod sealed {
    pub trait Sealed {}
}

/// A value type a [`Cache`](super::Cache) can store: any `T: Copy`, any
/// `[T]` with `T: Copy`, and `str`. Sealed: the cache relies on the layout
/// it describes.
///
/// # Safety
///
/// Implemented only inside this crate: `bytes`/`align` describe exactly the
/// memory `copy_to` writes, and `from_raw` rebuilds a pointer to a valid
/// `Self` from such memory and the `meta` of the value it was copied from.
pub unsafe trait CacheValue: sealed::Sealed {
    /// Size in bytes, alignment, and the pointer metadata (slice length).
    #[doc(hidden)]
    fn __shape(&self) -> (usize, usize, usize);
    /// A typed pointer to a copy at `data` of a value whose shape had
    /// `meta`.
    #[doc(hidden)]
    fn __from_raw(data: NonNull<u8>, meta: usize) -> NonNull<Self>;
}

impl<T: Copy> sealed::Sealed for T {}
// SAFETY: a `T: Copy` is its `size_of` bytes; a bitwise copy is a valid `T`.
unsafe impl<T: Copy> CacheValue for T {
    #[inline]
    fn __shape(&self) -> (usize, usize, usize) {
        (size_of::<T>(), align_of::<T>(), 0)
    }

    #[inline]
    fn __from_raw(data: NonNull<u8>, _meta: usize) -> NonNull<Self> {
        data.cast()
    }
}

impl<T: Copy> sealed::Sealed for [T] {}
// SAFETY: a `[T]` of `len` elements is `len * size_of::<T>()` contiguous
// bytes aligned for `T`; a bitwise copy of `T: Copy` elements is valid.
unsafe impl<T: Copy> CacheValue for [T] {
    #[inline]
    fn __shape(&self) -> (usize, usize, usize) {
        (size_of_val(self), align_of::<T>(), self.len())
    }

    #[inline]
    fn __from_raw(data: NonNull<u8>, meta: usize) -> NonNull<Self> {
        NonNull::slice_from_raw_parts(data.cast(), meta)
    }
}

impl sealed::Sealed for str {}
// SAFETY: a `str` is `len` bytes of UTF-8; a copy of valid UTF-8 is valid.
unsafe impl CacheValue for str {
    #[inline]
    fn __shape(&self) -> (usize, usize, usize) {
        (self.len(), 1, self.len())
    }

    #[inline]
    fn __from_raw(data: NonNull<u8>, meta: usize) -> NonNull<Self> {
        // `*mut [u8]` to `*mut str` keeps the length metadata.
        let bytes = NonNull::slice_from_raw_parts(data, meta);
        // SAFETY: derived from a non-null pointer.
        unsafe { NonNull::new_unchecked(bytes.as_ptr() as *mut str) }
    }
}

/// Copies `value`'s bytes to `dst`.
///
/// # Safety
///
/// `dst` is valid for `value.__shape().0` bytes of writes, aligned to its
/// alignment, and does not overlap `value`.
#[inline]
pub(crate) unsafe fn copy_to<V: ?Sized + CacheValue>(value: &V, dst: NonNull<u8>) {
    let (bytes, _, _) = value.__shape();
    // SAFETY: `value` is `bytes` readable bytes (its shape); the caller
    // vouches for `dst`. An untyped copy also carries padding bytes.
    unsafe { core::ptr::copy_nonoverlapping((value as *const V).cast::<u8>(), dst.as_ptr(), bytes) };
}

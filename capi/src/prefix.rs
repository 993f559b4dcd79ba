//! Structs whose `struct_size` comes first: read or write only the prefix
//! the caller's size covers, so a binary built against an older (shorter)
//! header keeps working when fields are added at the end.
//!
//! Only whole fields are copied: a field that the caller's size cuts in
//! half (a corrupt size) keeps its default, or is not written.
//!
//! Must never: read or write a byte past `min(struct_size, size_of::<T>())`
//! of the caller's struct.

use core::ptr;

/// A `#[repr(C)]` struct with `struct_size: usize` as its first field.
///
/// # Safety
///
/// The type is `#[repr(C)]`, its first field is the `usize` size, every
/// bit pattern of every field is valid (integers only), and
/// [`FIELD_ENDS`](Self::FIELD_ENDS) lists where each field ends, in
/// increasing order.
pub unsafe trait Prefixed: Copy {
    /// The offset just past each field, first field first.
    const FIELD_ENDS: &'static [usize];
}

/// How many bytes of `T` a caller's `struct_size` covers in whole fields,
/// or `None` if it does not even cover `struct_size` itself.
pub fn covered<T: Prefixed>(struct_size: usize) -> Option<usize> {
    let n = T::FIELD_ENDS.iter().copied().take_while(|&end| end <= struct_size).last()?;
    Some(n)
}

/// The caller's `*src`, with the fields its `struct_size` does not cover
/// taken from `defaults`; `None` if the size does not cover itself.
///
/// # Safety
///
/// `src` points to a readable, aligned struct of at least `struct_size`
/// bytes (as the caller declared it), whose first field is that size.
pub unsafe fn read<T: Prefixed>(src: *const T, defaults: T) -> Option<T> {
    // SAFETY: every version of the struct starts with its `usize` size,
    // readable per the caller's contract.
    let size = unsafe { src.cast::<usize>().read() };
    let n = covered::<T>(size)?;
    let mut out = defaults;
    // SAFETY: `n <= size` bytes of `src` are readable (the caller's
    // contract) and `n <= size_of::<T>()` fit in `out`; every bit pattern
    // of the integer fields is valid (`Prefixed`); the two cannot overlap
    // (`out` is a local).
    unsafe { ptr::copy_nonoverlapping(src.cast::<u8>(), ptr::from_mut(&mut out).cast::<u8>(), n) };
    Some(out)
}

/// Writes the fields of `value` that the caller's `(*dst).struct_size`
/// covers, except `struct_size` itself. Writes nothing if the size does
/// not cover itself.
///
/// # Safety
///
/// `dst` points to a writable, aligned struct of at least the
/// `struct_size` bytes its first field declares.
pub unsafe fn write<T: Prefixed>(dst: *mut T, value: &T) {
    // SAFETY: the size comes first in every version (caller's contract).
    let size = unsafe { dst.cast::<usize>().read() };
    let Some(n) = covered::<T>(size) else { return };
    let skip = core::mem::size_of::<usize>();
    if n <= skip {
        return;
    }
    // SAFETY: bytes `skip..n` lie within the caller's `size` bytes and
    // within `T`; `value` is a separate struct of ours, so no overlap.
    unsafe {
        ptr::copy_nonoverlapping(ptr::from_ref(value).cast::<u8>().add(skip), dst.cast::<u8>().add(skip), n - skip)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct V2 {
        struct_size: usize,
        a: u32,
        b: usize,
        c: u64,
    }

    // SAFETY: repr(C), size first, integer fields, ends in order.
    unsafe impl Prefixed for V2 {
        const FIELD_ENDS: &'static [usize] = &[
            core::mem::offset_of!(V2, struct_size) + 8,
            core::mem::offset_of!(V2, a) + 4,
            core::mem::offset_of!(V2, b) + 8,
            core::mem::offset_of!(V2, c) + 8,
        ];
    }

    /// What an old caller compiled: the first two fields only.
    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    struct V1 {
        struct_size: usize,
        a: u32,
    }

    const DEFAULTS: V2 = V2 { struct_size: 0, a: 1, b: 2, c: 3 };

    #[test]
    fn an_old_caller_is_read_only_as_far_as_it_reaches() {
        let old = V1 { struct_size: core::mem::size_of::<V1>(), a: 40 };
        // SAFETY: `old` is a live V1 and declares its own size.
        let got = unsafe { read(ptr::from_ref(&old).cast::<V2>(), DEFAULTS) }.unwrap();
        assert_eq!((got.a, got.b, got.c), (40, 2, 3));
        let full = V2 { struct_size: core::mem::size_of::<V2>(), a: 5, b: 6, c: 7 };
        // SAFETY: a live V2 declaring its size.
        assert_eq!(unsafe { read(&full, DEFAULTS) }, Some(full));
        let tiny = V2 { struct_size: 4, ..full };
        // SAFETY: as above (the size is smaller than the struct).
        assert_eq!(unsafe { read(&tiny, DEFAULTS) }, None, "a size below its own field");
        let cut = V2 { struct_size: 20, ..full };
        // SAFETY: as above.
        let got = unsafe { read(&cut, DEFAULTS) }.unwrap();
        assert_eq!((got.a, got.b), (5, 2), "a field cut in half keeps its default");
    }

    #[test]
    fn an_old_caller_is_written_only_as_far_as_it_reaches() {
        let value = V2 { struct_size: 999, a: 5, b: 6, c: 7 };
        let mut aligned = V2 { struct_size: core::mem::size_of::<V1>(), a: 0, b: 0xEE, c: 0xEE };
        // An old caller's V1 inside a V2-sized buffer: b and c must stay.
        // SAFETY: `aligned` is a live V2 whose size field covers a V1.
        unsafe { write(&mut aligned, &value) };
        assert_eq!(aligned, V2 { struct_size: core::mem::size_of::<V1>(), a: 5, b: 0xEE, c: 0xEE });
        let mut none = V2 { struct_size: 3, a: 0, b: 0, c: 0 };
        // SAFETY: as above.
        unsafe { write(&mut none, &value) };
        assert_eq!(none, V2 { struct_size: 3, a: 0, b: 0, c: 0 }, "nothing written");
    }
}

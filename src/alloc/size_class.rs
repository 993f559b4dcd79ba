//! Size classes of the allocator: eight per doubling above 128 bytes, so a
//! block wastes at most 12.5 % of its size (plus the 8-byte granularity
//! below 128 bytes).
//!
//! Owns the mapping request size → class → block size → span size, all
//! pure arithmetic usable in `const` context. Must never allocate or panic
//! on the allocation path (`class_of` is total on `1..=SMALL_MAX`).
//!
//! The crate has a second scheme, the discardable store's
//! (`handle/store.rs`, four per doubling), and two are enough: the store's
//! classes are coarser because its costs are OS-visible and its small slots
//! share pages that must empty before they can be returned, so fewer,
//! fuller classes give pages back sooner; these are finer because a strong
//! block is never given back while live, so internal fragmentation is the
//! cost that counts.

/// Largest block served from a size class; bigger requests get own spans.
pub(crate) const SMALL_MAX: usize = 64 << 10;
/// Largest alignment a size class can honour (block offsets in a span are
/// multiples of the block size from a 128-byte aligned start).
pub(crate) const CLASS_ALIGN_MAX: usize = 128;
/// Number of classes: 16 of 8-byte steps up to 128, then 8 per doubling up
/// to 64 KiB.
pub(crate) const CLASSES: usize = 16 + 9 * 8;

/// The class of a request of `size` bytes (`1..=SMALL_MAX`).
#[inline(always)]
pub(crate) const fn class_of(size: usize) -> usize {
    if size <= 8 {
        return 0;
    }
    if size <= 128 {
        return size.div_ceil(8) - 1;
    }
    let log = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize; // >= 7
    let shift = log - 3;
    16 + (log - 7) * 8 + ((size - 1) >> shift) - 8
}

/// The block size of `class`.
#[inline(always)]
pub(crate) const fn block_size(class: usize) -> usize {
    if class < 16 {
        return (class + 1) * 8;
    }
    let group = (class - 16) / 8;
    let step = (class - 16) % 8;
    (9 + step) << (4 + group)
}

/// The class for `size` bytes aligned to `align` (a power of two at most
/// [`CLASS_ALIGN_MAX`]): the class of `size` rounded up to `align`, whose
/// block size is a multiple of `align`. Up to 128 bytes the blocks are all
/// multiples of 8, so the rounded size is itself a block. Above, the blocks
/// of one doubling are the multiples of some `2^s` in it: if `align <= 2^s`
/// every block there is a multiple of `align`; if `align > 2^s` the rounded
/// size is a multiple of `align`, hence of `2^s`, hence itself a block.
#[inline(always)]
pub(crate) const fn class_for(size: usize, align: usize) -> usize {
    class_of((size + align - 1) & !(align - 1))
}

/// The span size (and alignment) for blocks of `class`: 64 KiB up to 8 KiB
/// blocks, then room for about eight blocks, at most 512 KiB.
#[inline(always)]
pub(crate) const fn span_bytes(class: usize) -> usize {
    let size = block_size(class);
    if size <= 8 << 10 {
        64 << 10
    } else {
        let span = (size * 8).next_power_of_two();
        if span < 512 << 10 {
            span
        } else {
            512 << 10
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_are_tight_and_monotonic() {
        assert_eq!(block_size(CLASSES - 1), SMALL_MAX);
        let mut last = 0;
        for size in 1..=SMALL_MAX {
            let c = class_of(size);
            assert!(c < CLASSES && c >= last);
            let b = block_size(c);
            assert!(b >= size, "{size} -> {b}");
            if c > 0 {
                assert!(block_size(c - 1) < size, "{size} not in its smallest class");
            }
            if size > 128 {
                assert!((b - size) * 8 <= b, "waste above 12.5 % at {size}: {b}");
            }
            last = c;
        }
    }

    #[test]
    fn aligned_classes_honour_alignment() {
        for align in [1, 2, 4, 8, 16, 32, 64, 128] {
            for size in 1..=SMALL_MAX {
                let c = class_for(size, align);
                assert!(c < CLASSES, "{size}/{align}");
                assert!(block_size(c) >= size && block_size(c) % align == 0, "{size}/{align}");
            }
        }
    }
}

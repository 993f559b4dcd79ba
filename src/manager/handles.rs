//! The constructors of [`Discardable`]: where a handle meets its manager.
//!
//! Owns: choosing the arena (a manager's, or the global manager's), getting
//! bytes from its store, writing the value and publishing the header. They
//! live in the manager layer so that the handle layer below never sees a
//! `Manager` (DESIGN.md's layer order): the handle gives
//! `Discardable::from_block`, the manager gives the arena.
//!
//! Must never: publish a header before its bytes hold a valid value.

use core::ptr::NonNull;
use std::alloc::Layout;

use super::Manager;
use crate::error::Error;
use crate::handle::header::Birth;
use crate::handle::{Discardable, Fresh};

/// Born with its creator's pin.
const PINNED: Birth = Birth { pinned: true, sink: 0, tag: 0 };

impl<T: Copy> Discardable<T> {
    /// Moves `value` into discardable memory of the global manager.
    ///
    /// # Panics
    ///
    /// If the OS refuses memory, or the global manager cannot start.
    pub fn new(value: T) -> Self {
        Self::new_in(value, Manager::global())
    }

    /// Moves `value` into discardable memory of `manager`.
    ///
    /// # Panics
    ///
    /// If the OS refuses memory; see [`try_new_in`](Self::try_new_in).
    pub fn new_in(value: T, manager: &Manager) -> Self {
        Self::try_new_in(value, manager).unwrap_or_else(|e| panic!("Discardable::new_in: {e}"))
    }

    /// Moves `value` into discardable memory of `manager`, or returns why it
    /// could not.
    pub fn try_new_in(value: T, manager: &Manager) -> Result<Self, Error> {
        let (block, arena) = manager.alloc_block(size_of::<T>(), align_of::<T>(), false)?;
        // SAFETY: the block is fresh, ours, sized and aligned for one `T`.
        unsafe { block.ptr.cast::<T>().as_ptr().write(value) };
        Ok(Self::from_block(block, block.ptr.cast(), arena, Birth::default()))
    }
}

impl<T: Copy> Discardable<T> {
    /// Moves `value` into discardable memory of `manager`, published
    /// already pinned: it cannot be discarded before the returned [`Fresh`]
    /// lets go, however tight the budget.
    pub fn new_pinned_in(value: T, manager: &Manager) -> Result<Fresh<T>, Error> {
        let (block, arena) = manager.alloc_block(size_of::<T>(), align_of::<T>(), false)?;
        // SAFETY: the block is fresh, ours, sized and aligned for one `T`.
        unsafe { block.ptr.cast::<T>().as_ptr().write(value) };
        let handle = Self::from_block(block, block.ptr.cast(), arena, PINNED);
        Ok(Fresh::adopt(handle))
    }
}

impl<T: Copy> Discardable<[T]> {
    /// Copies `items` into discardable memory of the global manager.
    ///
    /// # Panics
    ///
    /// If the OS refuses memory, or the global manager cannot start.
    pub fn from_slice(items: &[T]) -> Self {
        Self::from_slice_in(items, Manager::global())
    }

    /// Copies `items` into discardable memory of `manager`.
    ///
    /// # Panics
    ///
    /// If the OS refuses memory; see [`try_from_slice_in`](Self::try_from_slice_in).
    pub fn from_slice_in(items: &[T], manager: &Manager) -> Self {
        Self::try_from_slice_in(items, manager).unwrap_or_else(|e| panic!("Discardable::from_slice_in: {e}"))
    }

    /// Copies `items` into discardable memory of `manager`, or returns why it
    /// could not.
    pub fn try_from_slice_in(items: &[T], manager: &Manager) -> Result<Self, Error> {
        let (block, arena) = manager.alloc_block(size_of_val(items), align_of::<T>(), false)?;
        // SAFETY: the block is fresh, ours, and sized and aligned for
        // `items.len()` values of `T`; it cannot overlap `items`.
        unsafe { core::ptr::copy_nonoverlapping(items.as_ptr(), block.ptr.cast::<T>().as_ptr(), items.len()) };
        let ptr = NonNull::slice_from_raw_parts(block.ptr.cast::<T>(), items.len());
        Ok(Self::from_block(block, ptr, arena, Birth::default()))
    }
}

impl Discardable<[u8]> {
    /// `len` zero bytes of discardable memory of `manager`: fresh zero pages,
    /// with no copy through the stack.
    ///
    /// # Panics
    ///
    /// If the OS refuses memory; see [`try_zeroed_in`](Self::try_zeroed_in).
    pub fn zeroed_in(len: usize, manager: &Manager) -> Self {
        Self::try_zeroed_in(len, manager).unwrap_or_else(|e| panic!("Discardable::zeroed_in: {e}"))
    }

    /// `len` bytes of discardable memory of `manager`, written in place by
    /// `fill` (no copy through a `Vec`: a decoder writes straight into the
    /// discardable pages), and published already pinned. `fill` sees zeroed
    /// bytes.
    ///
    /// ```
    /// # let manager = discardable::Manager::builder().limit(1 << 20).start()?;
    /// let image = discardable::Discardable::<[u8]>::fill_in(3, &manager, |px| px.copy_from_slice(b"rgb"))?;
    /// assert_eq!(&image[..], b"rgb");
    /// # Ok::<(), discardable::Error>(())
    /// ```
    pub fn fill_in(len: usize, manager: &Manager, fill: impl FnOnce(&mut [u8])) -> Result<Fresh<[u8]>, Error> {
        Layout::array::<u8>(len).map_err(|_| Error::Layout)?;
        let (block, arena) = manager.alloc_block(len, 1, true)?;
        let ptr = NonNull::slice_from_raw_parts(block.ptr, len);
        let mut fresh = Fresh::adopt(Self::from_block(block, ptr, arena, PINNED));
        fill(&mut fresh);
        Ok(fresh)
    }

    /// `len` zero bytes of discardable memory of `manager`, or why not.
    pub fn try_zeroed_in(len: usize, manager: &Manager) -> Result<Self, Error> {
        Layout::array::<u8>(len).map_err(|_| Error::Layout)?;
        let (block, arena) = manager.alloc_block(len, 1, true)?;
        let ptr = NonNull::slice_from_raw_parts(block.ptr, len);
        Ok(Self::from_block(block, ptr, arena, Birth::default()))
    }
}

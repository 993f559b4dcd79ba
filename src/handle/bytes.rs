//! Byte-offset operations on `Discardable<[u8]>` (the seed's API).
//!
//! Each operation checks its range first, then pins for its own duration
//! only. Out-of-range input is an [`AccessError::OutOfBounds`], never a
//! panic; discarded bytes are an [`AccessError::Discarded`].
//!
//! Must never: hold a pin beyond the call, or index without a prior check.

use core::cmp::Ordering;
use core::ops::Range;

use super::Discardable;
use crate::error::AccessError;

/// `offset..offset + n` if it fits in `len` bytes.
fn span(offset: usize, n: usize, len: usize) -> Result<Range<usize>, AccessError> {
    match offset.checked_add(n) {
        Some(end) if end <= len => Ok(offset..end),
        end => Err(AccessError::OutOfBounds { start: offset, end: end.unwrap_or(usize::MAX), len }),
    }
}

/// `range` if it is ordered and fits in `len` bytes.
fn within(range: Range<usize>, len: usize) -> Result<Range<usize>, AccessError> {
    if range.start <= range.end && range.end <= len {
        Ok(range)
    } else {
        Err(AccessError::OutOfBounds { start: range.start, end: range.end, len })
    }
}

impl Discardable<[u8]> {
    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// ```
    /// # let m = discardable::Manager::builder().limit(1 << 20).start()?;
    /// let d = discardable::Discardable::from_slice_in(b"hello world", &m);
    /// let mut word = [0u8; 5];
    /// d.read_at(6, &mut word).unwrap();
    /// assert_eq!(&word, b"world");
    /// assert!(d.read_at(7, &mut word).is_err());
    /// # Ok::<(), discardable::Error>(())
    /// ```
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        let range = span(offset, buf.len(), self.len())?;
        let bytes = self.upgrade().ok_or(AccessError::Discarded)?;
        buf.copy_from_slice(&bytes[range]);
        Ok(())
    }

    /// Copies `data` into the bytes starting at `offset`.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        let range = span(offset, data.len(), self.len())?;
        let mut bytes = self.upgrade_mut().ok_or(AccessError::Discarded)?;
        bytes[range].copy_from_slice(data);
        Ok(())
    }

    /// Copies the bytes of `src` to `dest` (they may overlap, like `memmove`).
    pub fn copy_within(&mut self, src: Range<usize>, dest: usize) -> Result<(), AccessError> {
        let len = self.len();
        let src = within(src, len)?;
        span(dest, src.len(), len)?;
        let mut bytes = self.upgrade_mut().ok_or(AccessError::Discarded)?;
        bytes.copy_within(src, dest);
        Ok(())
    }

    /// Compares the `data.len()` bytes at `offset` with `data`
    /// lexicographically.
    pub fn compare_at(&self, offset: usize, data: &[u8]) -> Result<Ordering, AccessError> {
        let range = span(offset, data.len(), self.len())?;
        let bytes = self.upgrade().ok_or(AccessError::Discarded)?;
        Ok(bytes[range].cmp(data))
    }

    /// The absolute offset of the first `byte` in `range`, if any.
    pub fn find(&self, byte: u8, range: Range<usize>) -> Result<Option<usize>, AccessError> {
        let range = within(range, self.len())?;
        let bytes = self.upgrade().ok_or(AccessError::Discarded)?;
        Ok(bytes[range.clone()].iter().position(|&b| b == byte).map(|i| range.start + i))
    }

    /// Sets every byte in `range` to `byte`.
    pub fn fill(&mut self, range: Range<usize>, byte: u8) -> Result<(), AccessError> {
        let range = within(range, self.len())?;
        let mut bytes = self.upgrade_mut().ok_or(AccessError::Discarded)?;
        bytes[range].fill(byte);
        Ok(())
    }
}

//! Raw pins: a pin counted in a handle's state word with no guard to drop,
//! for callers that keep their pins in bookkeeping of their own (the C
//! boundary's `dsc_pin`/`dsc_unpin`, whose pins nest, count and cross
//! threads, and outlive any Rust borrow).
//!
//! Owns no new protocol step: [`Discardable::pin_raw`] is the step
//! [`Discardable::upgrade`] takes (`Header::pin`: one `fetch_add`, the
//! lazy-mode slow path when a flag is set) and [`Discardable::unpin_raw`]
//! the one dropping its guard takes (`State::unpin`). The loom models of
//! pin/discard, of lazy revival and of the orphan path (a handle dropped
//! while pinned, state INV-8) therefore cover them as they are; a raw pin
//! still counted when its handle drops is exactly a forgotten guard (the
//! bytes and header are leaked, never freed under the pin).
//!
//! Must never: hand out a reference (only a raw pointer, whose users
//! uphold the aliasing rules themselves), or unpin a pin it was not given.

use core::ptr::NonNull;

use super::Discardable;

impl<T: ?Sized> Discardable<T> {
    /// Pins the value without a guard: `Some(ptr)` while the bytes are
    /// alive, `None` once they were discarded (and forever after). The pin
    /// stays counted until [`unpin_raw`](Self::unpin_raw); pins nest, and
    /// every pin returns the same address.
    ///
    /// The pointer is valid for reads while the pin lasts, and for writes
    /// too as long as no [`Pinned`](crate::Pinned) guard of this handle
    /// lives (a shared guard's bytes never change, state INV-1); no access
    /// through it may overlap a [`PinnedMut`](crate::PinnedMut). A pin never
    /// given back keeps the bytes forever, as a `mem::forget`-ten guard
    /// does.
    ///
    /// ```
    /// # let manager = discardable::Manager::builder().limit(1 << 20).start()?;
    /// let d = discardable::Discardable::from_slice_in(&[1u8, 2, 3], &manager);
    /// let p = d.pin_raw().expect("alive");
    /// assert_eq!(d.pin_raw(), Some(p), "pins nest, at one address");
    /// assert!(!d.discard(), "pinned");
    /// // SAFETY: two pins were taken above and are given back once each.
    /// unsafe { d.unpin_raw() };
    /// // SAFETY: as above.
    /// unsafe { d.unpin_raw() };
    /// assert!(d.discard());
    /// assert!(d.pin_raw().is_none());
    /// # Ok::<(), discardable::Error>(())
    /// ```
    #[inline]
    pub fn pin_raw(&self) -> Option<NonNull<T>> {
        if self.pin() {
            Some(self.ptr)
        } else {
            None
        }
    }

    /// Gives back one pin taken with [`pin_raw`](Self::pin_raw) and records
    /// an access for the replacement policy. Once the last pin is gone the
    /// bytes may be discarded whenever the manager likes.
    ///
    /// # Safety
    ///
    /// The caller holds a pin of this handle taken with `pin_raw` and not
    /// given back yet, gives up that one pin here, and no longer accesses
    /// the bytes through it.
    #[inline]
    pub unsafe fn unpin_raw(&self) {
        self.state().unpin();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Discardable, Manager};

    #[test]
    fn raw_pins_nest_count_and_release() {
        let m = Manager::builder().limit(1 << 20).start().unwrap();
        let d = Discardable::from_slice_in(&[9u8; 100], &m);
        let first = d.pin_raw().expect("alive");
        let second = d.pin_raw().expect("alive");
        assert_eq!(first, second, "every pin has the same address");
        assert_eq!(d.state().load().pins(), 2);
        assert!(!d.discard(), "pinned twice");
        // SAFETY: the first of the two pins taken above.
        unsafe { d.unpin_raw() };
        assert_eq!(d.state().load().pins(), 1);
        assert_eq!(m.reclaim(usize::MAX), 0, "still pinned once");
        assert!(d.upgrade().is_some_and(|b| b[99] == 9));
        // SAFETY: the second pin.
        unsafe { d.unpin_raw() };
        assert_eq!(d.state().load().pins(), 0);
        assert_eq!(d.state().load().accesses(), 3, "two raw unpins and one guard recorded");
        assert_eq!(m.reclaim(usize::MAX), d.cost());
        assert_eq!(d.pin_raw(), None);
        assert_eq!(d.state().load().pins(), 0, "a failed raw pin leaves no count");
    }

    #[test]
    fn a_raw_pin_writes_what_a_guard_reads() {
        let m = Manager::builder().limit(1 << 20).start().unwrap();
        let d = Discardable::<[u8]>::zeroed_in(8, &m);
        let p = d.pin_raw().expect("alive");
        // SAFETY: pinned just above; no guard of `d` lives.
        unsafe { p.cast::<u8>().as_ptr().add(3).write(7) };
        // SAFETY: the pin taken above; the write is done.
        unsafe { d.unpin_raw() };
        assert_eq!(&*d.upgrade().unwrap(), &[0, 0, 0, 7, 0, 0, 0, 0]);
    }
}

//! Handles: `dsc_alloc`, `dsc_free`, `dsc_size`, `dsc_is_discarded`,
//! `dsc_pin` and `dsc_unpin`.
//!
//! A `dsc_handle` is a boxed `Discardable<[u8]>` plus one atomic word that
//! counts who still needs the box:
//!
//! ```text
//!  usize::BITS-1                         1     0
//! +---------------------------------------+-------+
//! |        C pins outstanding             | OWNER |
//! +---------------------------------------+-------+
//! ```
//!
//! Invariants:
//! - INV-1: each C pin (a `dsc_pin` that returned non-NULL and has not
//!   been unpinned) is one raw pin of the `Discardable`
//!   ([`pin_raw`](discardable::Discardable::pin_raw)) and one `PIN` in the
//!   word; `OWNER` is set until `dsc_free`.
//! - INV-2: the thread that takes the word to zero (the last unpin after
//!   `dsc_free`, or `dsc_free` with no pin) frees the box, and with it the
//!   `Discardable`; every other thread's last access to the box is before
//!   its own update of the word (an unpin gives its raw pin back first), and
//!   the update is a Release that the freeing thread's Acquire follows.
//! - INV-3: so the `Discardable` is dropped with no raw pin counted, and
//!   its bytes are freed at once (or were discarded already): the crate's
//!   orphan path (state INV-8) is never needed.
//!
//! - INV-4: a released handle's memory is never freed: its `Discardable`
//!   is dropped, the word set to `RELEASED`, and the handle parked in a
//!   quarantine of at least [`QUARANTINE`] released handles, oldest reused
//!   first by `dsc_alloc`. So a call on a released handle reads valid
//!   memory and sees `RELEASED`.
//!
//! Misuse (a second `dsc_free`, an unpin without a pin, a pin after
//! `dsc_free`, any call on a released handle) aborts with a message:
//! always while the handle lives, and after its release until its memory
//! is reused by a later `dsc_alloc` (at least [`QUARANTINE`] releases
//! later), like glibc's best-effort double-free check.

use core::mem::ManuallyDrop;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::*};
use std::collections::VecDeque;
use std::sync::Mutex;

use discardable::Discardable;

use crate::boundary::{die, guarded};
use crate::manager::{self, dsc_manager};

/// `OWNER`: `dsc_free` was not called yet.
const OWNER: usize = 1;
/// One C pin.
const PIN: usize = 2;
/// C pins beyond this abort (a leak of pins), long before the word wraps.
const PIN_MAX: usize = usize::MAX / 4;
/// The word of a released handle (INV-4): no `OWNER` bit, and more pins
/// than [`PIN_MAX`] allows.
const RELEASED: usize = usize::MAX & !OWNER;
/// Released handles kept before the oldest is reused (INV-4).
pub(crate) const QUARANTINE: usize = 1024;

/// Released handles, oldest first (INV-4).
static RELEASED_HANDLES: Mutex<VecDeque<Parked>> = Mutex::new(VecDeque::new());

/// A released handle in the quarantine.
struct Parked(NonNull<dsc_handle>);

// SAFETY: a parked handle is nobody's (INV-4): only the quarantine's lock
// holder may reuse it.
unsafe impl Send for Parked {}

/// A block of discardable memory: its bytes may vanish while nobody pins
/// it. Opaque to C.
#[derive(Debug)]
pub struct dsc_handle {
    /// `OWNER` and the C pins, or `RELEASED` (module docs).
    refs: AtomicUsize,
    /// Dropped at the release, rewritten at a reuse (INV-4).
    pub(crate) bytes: ManuallyDrop<Discardable<[u8]>>,
}

impl dsc_handle {
    /// The handle behind `h`, if it is not NULL.
    ///
    /// # Safety
    ///
    /// `h` is NULL or a live handle (not released).
    #[inline(always)]
    pub(crate) unsafe fn get<'a>(h: *const dsc_handle) -> Option<&'a dsc_handle> {
        // SAFETY: NULL, live, or released and parked (its memory stays,
        // INV-4), per the caller's contract.
        let h = unsafe { h.as_ref() }?;
        if h.refs.load(Relaxed) == RELEASED {
            die("dsc_handle", "the handle was already released (freed and unpinned)");
        }
        Some(h)
    }

    /// A handle owning `bytes`: a parked one reused once the quarantine is
    /// full, else a new one.
    fn new(bytes: Discardable<[u8]>) -> *mut dsc_handle {
        let reused = {
            let mut parked = RELEASED_HANDLES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if parked.len() > QUARANTINE {
                parked.pop_front()
            } else {
                None
            }
        };
        match reused {
            Some(Parked(slot)) => {
                let slot = slot.as_ptr();
                // SAFETY: a parked handle is ours alone once popped (INV-4);
                // its `bytes` were dropped at the release, so writing a new
                // value leaks nothing. The Release store publishes it with
                // the handle.
                unsafe {
                    ptr::addr_of_mut!((*slot).bytes).write(ManuallyDrop::new(bytes));
                    (*slot).refs.store(OWNER, Release);
                }
                slot
            }
            None => {
                Box::into_raw(Box::new(dsc_handle { refs: AtomicUsize::new(OWNER), bytes: ManuallyDrop::new(bytes) }))
            }
        }
    }

    /// Releases the handle: drops its `Discardable` and parks its memory
    /// (INV-4).
    ///
    /// # Safety
    ///
    /// The caller took the word to zero (INV-2): nobody else may touch the
    /// handle.
    unsafe fn release(this: *mut dsc_handle) {
        // SAFETY: ours alone (INV-2); dropped once, here, before the word
        // says `RELEASED`, and rewritten before any reuse.
        unsafe { ManuallyDrop::drop(&mut (*this).bytes) };
        // SAFETY: the memory stays (never freed, INV-4).
        unsafe { (*this).refs.store(RELEASED, Release) };
        let mut parked = RELEASED_HANDLES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: `this` is not null (a live handle's address).
        parked.push_back(Parked(unsafe { NonNull::new_unchecked(this) }));
    }

    /// Takes one C pin: the address of the bytes, or `None` once they were
    /// discarded.
    fn pin(&self) -> Option<NonNull<[u8]>> {
        // Counted first, so the box outlives this call even against a
        // (misused) concurrent last unpin. Relaxed: the raw pin below is
        // what orders the byte accesses.
        let old = self.refs.fetch_add(PIN, Relaxed);
        if old & OWNER == 0 {
            die("dsc_pin", "the handle was already passed to dsc_free");
        }
        if old >= PIN_MAX {
            die("dsc_pin", "too many pins outstanding");
        }
        let pinned = self.bytes.pin_raw();
        if pinned.is_none() {
            // Not the last reference: OWNER is set (checked above). Release
            // orders our read of the handle before its eventual free.
            self.refs.fetch_sub(PIN, Release);
        }
        pinned
    }

    /// Gives one C pin back; frees the handle if it was the last reference
    /// (INV-2).
    ///
    /// # Safety
    ///
    /// `this` is a live handle. Its pins are checked here.
    unsafe fn unpin(this: *mut dsc_handle) {
        // SAFETY: live, per the caller's contract.
        let h = unsafe { &*this };
        match h.refs.load(Relaxed) {
            RELEASED => die("dsc_unpin", "the handle was already released (freed and unpinned)"),
            refs if refs < PIN => die("dsc_unpin", "no pin outstanding on this handle"),
            _ => {}
        }
        // SAFETY: a C pin is outstanding (checked just above), so a raw pin
        // of ours is counted (INV-1), and this call gives that one back.
        unsafe { h.bytes.unpin_raw() };
        // Release: our accesses to the box happen before its free (INV-2);
        // Acquire: if we free it, we see every other thread's.
        let old = h.refs.fetch_sub(PIN, AcqRel);
        if old < PIN {
            die("dsc_unpin", "no pin outstanding on this handle (unpinned concurrently)");
        }
        if old == PIN {
            // SAFETY: the word is zero: no owner, no pin, so nobody else
            // may touch the handle (INV-2).
            unsafe { Self::release(this) };
        }
    }

    /// `dsc_free`'s work (INV-2).
    ///
    /// # Safety
    ///
    /// `this` is a live handle.
    unsafe fn release_owner(this: *mut dsc_handle) {
        // SAFETY: live, per the caller's contract.
        let h = unsafe { &*this };
        // AcqRel as in `unpin`.
        let old = h.refs.fetch_and(!OWNER, AcqRel);
        if old & OWNER == 0 {
            die("dsc_free", "the handle was freed twice");
        }
        if old == OWNER {
            // SAFETY: no pin and now no owner: ours alone (INV-2).
            unsafe { Self::release(this) };
        }
    }
}

/// Allocates `size` zero bytes of discardable memory in `m` (NULL: the
/// global manager). `size` may be 0 (a valid, empty handle). NULL if the
/// memory or the global manager could not be had, or `size` exceeds
/// `PTRDIFF_MAX`. The handle starts unpinned: under a tight budget it may
/// be discarded before its first pin.
///
/// # Safety
///
/// `m` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn dsc_alloc(m: *mut dsc_manager, size: usize) -> *mut dsc_handle {
    guarded("dsc_alloc", || {
        // SAFETY: NULL or live, per the contract.
        let Some(m) = (unsafe { manager::or_global(m) }) else { return ptr::null_mut() };
        match Discardable::<[u8]>::try_zeroed_in(size, &m.manager) {
            Ok(bytes) => dsc_handle::new(bytes),
            Err(_) => ptr::null_mut(),
        }
    })
}

/// Frees a handle. With pins still outstanding the handle stays valid for
/// their `dsc_unpin` (from any thread) and the bytes stay; the last unpin
/// releases both. NULL is a no-op; a second `dsc_free` of a handle whose
/// pins keep it alive aborts with a message, and so does one after the
/// release until the handle's memory is reused (module docs, INV-4).
///
/// # Safety
///
/// `h` is NULL or a handle from `dsc_alloc` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn dsc_free(h: *mut dsc_handle) {
    guarded("dsc_free", || {
        if !h.is_null() {
            // SAFETY: live, per the contract.
            unsafe { dsc_handle::release_owner(h) };
        }
    })
}

/// The size requested from `dsc_alloc` (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn dsc_size(h: *const dsc_handle) -> usize {
    // SAFETY: NULL or live, per the contract.
    guarded("dsc_size", || unsafe { dsc_handle::get(h) }.map_or(0, |h| h.bytes.len()))
}

/// 1 once the bytes were discarded (final: it never goes back to 0), 0
/// while they are alive (which may be stale by the time it is read). NULL
/// holds no bytes: 1.
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn dsc_is_discarded(h: *const dsc_handle) -> core::ffi::c_int {
    // SAFETY: NULL or live, per the contract.
    guarded("dsc_is_discarded", || unsafe { dsc_handle::get(h) }.map_or(1, |h| h.bytes.is_discarded().into()))
}

/// Pins the bytes (the seed's "resume"): their address, valid for reads
/// and writes of `dsc_size(h)` bytes until the matching `dsc_unpin`, or
/// NULL once they were discarded (and forever after). Pins nest and count,
/// from any threads; every pin of a live handle returns the same address.
/// NULL is a no-op (NULL). Pinning after `dsc_free` aborts.
///
/// # Safety
///
/// `h` is NULL or a live handle not passed to `dsc_free`.
#[no_mangle]
pub unsafe extern "C" fn dsc_pin(h: *mut dsc_handle) -> *mut core::ffi::c_void {
    guarded("dsc_pin", || {
        // SAFETY: NULL or live, per the contract.
        match unsafe { dsc_handle::get(h) }.and_then(dsc_handle::pin) {
            Some(p) => p.as_ptr().cast(),
            None => ptr::null_mut(),
        }
    })
}

/// Gives back one pin from `dsc_pin` (the seed's "suspend"): once no pin
/// is left the bytes may be discarded at any moment. Valid after
/// `dsc_free` for each pin still outstanding; the last one releases the
/// handle. An unpin without a pin aborts with a message; NULL is a no-op.
///
/// # Safety
///
/// `h` is NULL or a live handle (one freed with pins outstanding is live
/// until its last unpin).
#[no_mangle]
pub unsafe extern "C" fn dsc_unpin(h: *mut dsc_handle) {
    guarded("dsc_unpin", || {
        if !h.is_null() {
            // SAFETY: live, per the contract.
            unsafe { dsc_handle::unpin(h) };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Released handles are parked, not freed (INV-4): their word says
    /// `RELEASED`, and once more than [`QUARANTINE`] are parked the oldest
    /// is reused, as a working handle with fresh bytes.
    #[test]
    fn released_handles_are_parked_then_reused_oldest_first() {
        // SAFETY: every handle is from `dsc_alloc` and freed once; a parked
        // one is only read through its atomic word (its memory stays, INV-4).
        unsafe {
            let first = dsc_alloc(ptr::null_mut(), 16);
            assert!(!first.is_null());
            dsc_free(first);
            assert_eq!((*first).refs.load(Relaxed), RELEASED, "parked, and marked");
            let mut seen_first_again = false;
            let mut live = Vec::new();
            for _ in 0..=2 * QUARANTINE + 2 {
                let h = dsc_alloc(ptr::null_mut(), 16);
                assert!(!h.is_null());
                seen_first_again |= h == first;
                let p = dsc_pin(h).cast::<u8>();
                assert!(!p.is_null());
                assert!(
                    core::slice::from_raw_parts(p, 16).iter().all(|&b| b == 0),
                    "a reused handle has fresh zero bytes"
                );
                p.write(7);
                dsc_unpin(h);
                live.push(h);
                if live.len() > 4 {
                    dsc_free(live.remove(0));
                }
            }
            assert!(seen_first_again, "the oldest parked handle was reused");
            for h in live {
                dsc_free(h);
            }
        }
    }
}

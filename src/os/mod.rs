//! The platform layer: every system call the crate makes.
//!
//! Owns: mapping and unmapping address space, `madvise`, the page size,
//! physical memory size, raw reads of small `/proc` and `/sys` files into
//! caller-provided buffers, and the group registry's shared-memory file
//! (`shm.rs`: exclusive creation, owner checks, `MAP_SHARED`). All FFI `unsafe` of the crate lives below this
//! module, in the spirit of mimalloc's `prim.h`: each function states its
//! contract (preconditions and what the result means) before its body.
//!
//! Must never: allocate from the Rust heap (the global allocator calls into
//! it), panic, take a lock, or know a file format (parsing belongs to
//! `pressure`).

mod events;
#[cfg(discardable_fault_injection)]
pub mod faults;
mod linux;
#[cfg(not(loom))]
mod shm;
mod thread;

#[allow(unused_imports)]
pub(crate) use events::*;
pub(crate) use linux::*;
#[cfg(not(loom))]
pub(crate) use shm::*;
#[allow(unused_imports)]
pub(crate) use thread::*;

use core::fmt;

/// A failed system call: which operation, and the `errno` it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError {
    /// The operation that failed, e.g. `"mmap"`.
    pub op: &'static str,
    /// The raw `errno` value.
    pub errno: i32,
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.op, std::io::Error::from_raw_os_error(self.errno))
    }
}

impl std::error::Error for OsError {}

/// Hints the CPU to start loading the cache line at `ptr`: no read happens
/// (nothing is observed, no fault is taken, the address need not be
/// mapped), so it is allowed on bytes that are not pinned. Lets a lookup
/// overlap the fetch of a value with the atomic that pins it.
#[inline(always)]
#[cfg_attr(loom, allow(dead_code))] // the cache (not built under loom) prefetches
pub(crate) fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` only hints the cache hierarchy; SSE is baseline
    // on x86_64, and the instruction accepts any address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

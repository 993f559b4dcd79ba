//! The C types that are not opaque: the status codes, the policies, and
//! the two structs whose `struct_size` comes first.
//!
//! Values that come *from* C (a status passed to [`dsc_status_str`], the
//! policy in a [`dsc_config`]) arrive as plain integers ([`RawStatus`],
//! [`RawPolicy`], which the header spells `dsc_status` and `dsc_policy`):
//! C may pass any int there, and a Rust enum holding a value outside its
//! variants would be undefined behaviour. Values Rust returns are the enums.

use core::ffi::{c_char, c_int};

use discardable::{AccessError, Error, Policy};

/// What every fallible function returns. `DSC_OK` is zero; the others name
/// why the call did nothing (or, for `dsc_cache_put` beyond the capacity,
/// nothing is wrong: it is `DSC_OK`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum dsc_status {
    /// Success.
    DSC_OK = 0,
    /// The bytes were discarded: the caller recomputes them. Final: the
    /// handle never holds bytes again (free it and allocate a new one).
    DSC_DISCARDED = 1,
    /// An offset range past the end of the allocation, or one whose end
    /// overflows `size_t`. Checked before anything else is touched, also on
    /// a discarded handle.
    DSC_OUT_OF_RANGE = 2,
    /// A required pointer was NULL, or a configuration value is out of
    /// range (`limit = 0`, an unknown policy, a `struct_size` too small to
    /// hold itself, a cache value larger than the whole capacity).
    DSC_INVALID = 3,
    /// The operating system refused memory, or a thread could not be
    /// started.
    DSC_NO_MEMORY = 4,
    /// `dsc_find` found no such byte; `dsc_cache_get` and
    /// `dsc_cache_remove` found no live value under the key.
    DSC_NOT_FOUND = 5,
    /// `dsc_global_init` after the global manager started (explicitly, or
    /// by a first `dsc_global()` or `dsc_alloc(NULL, …)`).
    DSC_ALREADY_STARTED = 6,
}

/// A `dsc_status` as C passes it: any `int` (the header says `dsc_status`).
pub type RawStatus = c_int;

/// The replacement algorithm that picks which unpinned allocations are
/// discarded first (the seed paper's "replacement algorithm named at
/// initialization").
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum dsc_policy {
    /// Least recently used first.
    DSC_POLICY_LRU = 0,
    /// CLOCK (second chance): the default.
    DSC_POLICY_CLOCK = 1,
    /// First in, first out by creation; accesses are ignored.
    DSC_POLICY_FIFO = 2,
    /// S3-FIFO: a probationary FIFO and a main FIFO with frequency bits.
    DSC_POLICY_S3FIFO = 3,
}

/// A `dsc_policy` as C passes it: any `int` (the header says `dsc_policy`).
pub type RawPolicy = c_int;

impl dsc_policy {
    /// The Rust policy for C's value, or `None` for an unknown one.
    pub fn from_raw(raw: RawPolicy) -> Option<Policy> {
        Some(match raw {
            0 => Policy::Lru,
            1 => Policy::Clock,
            2 => Policy::Fifo,
            3 => Policy::S3Fifo,
            _ => return None,
        })
    }
}

/// How a manager starts: `dsc_manager_new` and `dsc_global_init` read it.
///
/// Call `dsc_config_init` first: it sets every field to its default and
/// `struct_size` to the size this header declares. The library reads only
/// the fields that `struct_size` covers (a program built against an older,
/// shorter `dsc_config` keeps working; fields it does not know keep their
/// defaults).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct dsc_config {
    /// `sizeof(dsc_config)` as the caller was compiled (set by
    /// `dsc_config_init`).
    pub struct_size: usize,
    /// The replacement policy (default `DSC_POLICY_CLOCK`). An unknown
    /// value is `DSC_INVALID`.
    pub policy: RawPolicy,
    /// The most discardable bytes the manager keeps before it discards
    /// unpinned allocations (counted as what they cost the OS: whole pages
    /// for large ones). `SIZE_MAX` (the default) means a quarter of
    /// physical memory or of the cgroup's limit, whichever is smaller; `0`
    /// is `DSC_INVALID`.
    pub limit: usize,
    /// Non-zero: lazy reclaim mode. Allocations that own whole pages and
    /// stay unpinned are also handed to the kernel with `MADV_FREE`, so it
    /// can drop them the instant memory runs short (default 0: managed
    /// mode, where only the manager discards).
    pub lazy: c_int,
    /// One budget for strong plus discardable bytes of the whole process
    /// (default 0: none). Only meaningful when the process allocates
    /// through discardable's allocator.
    pub process_limit: usize,
}

/// Counters of a manager, filled by `dsc_manager_stats`. Bytes are what the
/// allocations cost the OS (whole pages for large ones, the slot size for
/// small ones).
///
/// The caller sets `struct_size` to `sizeof(dsc_stats)` before the call;
/// the library writes only the fields it covers (and never `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct dsc_stats {
    /// Set by the caller: `sizeof(dsc_stats)`.
    pub struct_size: usize,
    /// Discardable bytes held now.
    pub discardable_bytes: usize,
    /// Strong bytes held by discardable's allocator (0 when it is not the
    /// process allocator, as in a plain C program).
    pub strong_bytes: usize,
    /// Bytes pinned at the manager's last scan.
    pub pinned_bytes: usize,
    /// Allocations discarded so far.
    pub discarded_count: u64,
    /// Bytes those allocations cost.
    pub discarded_bytes: u64,
    /// How far pins kept the manager above its limit at its last pass.
    pub over_limit_bytes: usize,
    /// The manager's limit in bytes.
    pub limit: usize,
    /// Live allocations (handles not yet freed).
    pub allocations: usize,
    /// Lazy mode: allocations handed to the kernel with `MADV_FREE`.
    pub offers: u64,
    /// Lazy mode: offered allocations whose pages the kernel took.
    pub kernel_discards: u64,
    /// Passes the manager thread completed.
    pub passes: u64,
}

/// The offset just past field `$f` (of type `$ty`) of `$t`.
macro_rules! end_of {
    ($t:ty, $f:ident: $ty:ty) => {
        core::mem::offset_of!($t, $f) + core::mem::size_of::<$ty>()
    };
}

// SAFETY: `#[repr(C)]`, `struct_size` first, integer fields only, and the
// ends listed in declaration order.
unsafe impl crate::prefix::Prefixed for dsc_config {
    const FIELD_ENDS: &'static [usize] = &[
        end_of!(dsc_config, struct_size: usize),
        end_of!(dsc_config, policy: RawPolicy),
        end_of!(dsc_config, limit: usize),
        end_of!(dsc_config, lazy: c_int),
        end_of!(dsc_config, process_limit: usize),
    ];
}

// SAFETY: as above.
unsafe impl crate::prefix::Prefixed for dsc_stats {
    const FIELD_ENDS: &'static [usize] = &[
        end_of!(dsc_stats, struct_size: usize),
        end_of!(dsc_stats, discardable_bytes: usize),
        end_of!(dsc_stats, strong_bytes: usize),
        end_of!(dsc_stats, pinned_bytes: usize),
        end_of!(dsc_stats, discarded_count: u64),
        end_of!(dsc_stats, discarded_bytes: u64),
        end_of!(dsc_stats, over_limit_bytes: usize),
        end_of!(dsc_stats, limit: usize),
        end_of!(dsc_stats, allocations: usize),
        end_of!(dsc_stats, offers: u64),
        end_of!(dsc_stats, kernel_discards: u64),
        end_of!(dsc_stats, passes: u64),
    ];
}

impl From<&discardable::Stats> for dsc_stats {
    fn from(s: &discardable::Stats) -> Self {
        Self {
            struct_size: core::mem::size_of::<Self>(),
            discardable_bytes: s.discardable_bytes,
            strong_bytes: s.strong_bytes,
            pinned_bytes: s.pinned_bytes,
            discarded_count: s.discarded_count,
            discarded_bytes: s.discarded_bytes,
            over_limit_bytes: s.over_limit_bytes,
            limit: s.limit,
            allocations: s.allocations,
            offers: s.offers,
            kernel_discards: s.kernel_discards,
            passes: s.passes,
        }
    }
}

impl From<&Error> for dsc_status {
    fn from(e: &Error) -> Self {
        match e {
            Error::AlreadyStarted => dsc_status::DSC_ALREADY_STARTED,
            Error::Os(_) | Error::Spawn(_) => dsc_status::DSC_NO_MEMORY,
            // ZeroLimit, Layout, TooLarge, Config, and any later variant:
            // what was asked for can never be served.
            _ => dsc_status::DSC_INVALID,
        }
    }
}

impl From<AccessError> for dsc_status {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Discarded => dsc_status::DSC_DISCARDED,
            AccessError::OutOfBounds { .. } => dsc_status::DSC_OUT_OF_RANGE,
        }
    }
}

/// A static, NUL-terminated English name for `s` (`"DSC_OK"`, …), or
/// `"DSC_UNKNOWN"` for a value that is no status. Never NULL; never freed.
#[no_mangle]
pub extern "C" fn dsc_status_str(s: RawStatus) -> *const c_char {
    let text: &'static core::ffi::CStr = match s {
        0 => c"DSC_OK",
        1 => c"DSC_DISCARDED",
        2 => c"DSC_OUT_OF_RANGE",
        3 => c"DSC_INVALID",
        4 => c"DSC_NO_MEMORY",
        5 => c"DSC_NOT_FOUND",
        6 => c"DSC_ALREADY_STARTED",
        _ => c"DSC_UNKNOWN",
    };
    text.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_name() {
        let statuses = [
            dsc_status::DSC_OK,
            dsc_status::DSC_DISCARDED,
            dsc_status::DSC_OUT_OF_RANGE,
            dsc_status::DSC_INVALID,
            dsc_status::DSC_NO_MEMORY,
            dsc_status::DSC_NOT_FOUND,
            dsc_status::DSC_ALREADY_STARTED,
        ];
        for (i, s) in statuses.into_iter().enumerate() {
            assert_eq!(s as c_int, i as c_int);
            // SAFETY: `dsc_status_str` returns a static NUL-terminated string.
            let name = unsafe { core::ffi::CStr::from_ptr(dsc_status_str(s as c_int)) };
            assert_eq!(name.to_str().unwrap(), format!("{s:?}"));
        }
        // SAFETY: as above.
        let unknown = unsafe { core::ffi::CStr::from_ptr(dsc_status_str(-1)) };
        assert_eq!(unknown.to_bytes(), b"DSC_UNKNOWN");
    }

    /// The field ends match the layout: increasing, and the last one is
    /// the struct's size up to its trailing padding.
    #[test]
    fn field_ends_describe_the_layout() {
        fn check<T: crate::prefix::Prefixed>() {
            let ends = T::FIELD_ENDS;
            assert_eq!(ends[0], size_of::<usize>());
            assert!(ends.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(ends.last().unwrap().next_multiple_of(align_of::<T>()), size_of::<T>());
        }
        check::<dsc_config>();
        check::<dsc_stats>();
        assert_eq!(crate::prefix::covered::<dsc_config>(size_of::<dsc_config>()), Some(40));
    }

    #[test]
    fn policies_round_trip_and_unknown_ones_are_refused() {
        assert_eq!(dsc_policy::from_raw(dsc_policy::DSC_POLICY_LRU as c_int), Some(Policy::Lru));
        assert_eq!(dsc_policy::from_raw(dsc_policy::DSC_POLICY_CLOCK as c_int), Some(Policy::Clock));
        assert_eq!(dsc_policy::from_raw(dsc_policy::DSC_POLICY_FIFO as c_int), Some(Policy::Fifo));
        assert_eq!(dsc_policy::from_raw(dsc_policy::DSC_POLICY_S3FIFO as c_int), Some(Policy::S3Fifo));
        assert_eq!(dsc_policy::from_raw(4), None);
        assert_eq!(dsc_policy::from_raw(-1), None);
    }
}

//! The crate's error types, one enum per concern.
//!
//! [`Error`] covers configuring managers and creating allocations;
//! [`AccessError`] covers the byte-offset operations on
//! `Discardable<[u8]>`. The global allocator never returns these: it
//! returns null, as `GlobalAlloc` requires.

use core::fmt;

pub use crate::os::OsError;

/// Why a manager could not start or an allocation could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A limit of zero bytes was configured; nothing could ever be kept.
    ZeroLimit,
    /// `install_global` was called after the global manager had started.
    AlreadyStarted,
    /// The requested size or alignment cannot be represented or served
    /// (alignment above the page size, a length whose byte size overflows).
    Layout,
    /// The operating system refused memory.
    Os(OsError),
    /// The manager thread could not be spawned.
    Spawn(std::io::Error),
    /// A value larger than the cache's whole capacity: it could never be
    /// kept.
    TooLarge {
        /// What the value would cost, in bytes.
        cost: usize,
        /// The cache's capacity, in bytes.
        capacity: usize,
    },
    /// A builder option that contradicts another or is out of range (the
    /// text says which).
    Config(&'static str),
    /// [`ManagerBuilder::group`](crate::ManagerBuilder::group) was given a
    /// name outside `[A-Za-z0-9._-]{1,200}`.
    InvalidGroupName(String),
    /// [`ManagerBuilder::weight`](crate::ManagerBuilder::weight) was 0: a
    /// member with no weight could never keep anything.
    ZeroWeight,
    /// The group's registry file belongs to another user: refused, never
    /// opened (another user's file must not steer this process's memory).
    ForeignGroupRegistry {
        /// The registry file.
        path: std::path::PathBuf,
        /// Its owner's user id.
        uid: u32,
    },
    /// A group's registry could not be read (missing, truncated, corrupt,
    /// another version): [`group_members`](crate::group_members) only; a
    /// member acts alone instead and counts it in
    /// [`Stats::group_faults`](crate::Stats::group_faults).
    GroupRegistry {
        /// The registry file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroLimit => f.write_str("the discardable limit must be greater than zero"),
            Error::AlreadyStarted => f.write_str("the global manager has already started"),
            Error::Layout => f.write_str("size or alignment not supported for a discardable allocation"),
            Error::Os(e) => write!(f, "out of memory: {e}"),
            Error::Spawn(e) => write!(f, "could not spawn the manager thread: {e}"),
            Error::TooLarge { cost, capacity } => {
                write!(f, "a value of {cost} bytes cannot fit in a cache of {capacity} bytes")
            }
            Error::Config(what) => write!(f, "invalid cache configuration: {what}"),
            Error::InvalidGroupName(name) => {
                write!(f, "invalid group name {name:?}: use 1 to 200 of A-Z a-z 0-9 . _ -")
            }
            Error::ZeroWeight => f.write_str("a group member's weight must be at least 1"),
            Error::ForeignGroupRegistry { path, uid } => {
                write!(f, "the group registry {} belongs to user {uid}; refusing to open it", path.display())
            }
            Error::GroupRegistry { path, reason } => write!(f, "group registry {}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os(e) => Some(e),
            Error::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

impl From<OsError> for Error {
    /// Always [`Error::Os`], whatever the errno: an `EINVAL` from `mmap` is
    /// the OS refusing, not a bad layout ([`Error::Layout`] is returned
    /// where the layout is the cause).
    fn from(e: OsError) -> Self {
        Error::Os(e)
    }
}

/// Why a byte-offset operation on a `Discardable<[u8]>` failed.
///
/// Bounds are checked before the allocation is pinned, so an out-of-range
/// request reports [`AccessError::OutOfBounds`] even if the bytes are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessError {
    /// The bytes were discarded; the owner must recompute them.
    Discarded,
    /// The byte range `start..end` does not fit in `len` bytes (or
    /// `start > end`).
    OutOfBounds {
        /// First byte requested.
        start: usize,
        /// One past the last byte requested (saturated on overflow).
        end: usize,
        /// Length of the allocation.
        len: usize,
    },
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::Discarded => f.write_str("the discardable bytes were discarded"),
            AccessError::OutOfBounds { start, end, len } => {
                write!(f, "byte range {start}..{end} out of bounds for length {len}")
            }
        }
    }
}

impl std::error::Error for AccessError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A real `EINVAL` from the OS is reported as the OS's, not as a layout
    /// problem; an alignment above the page size is the layout's.
    #[test]
    fn einval_from_the_os_is_not_a_layout_error() {
        let e = Error::from(OsError { op: "mmap", errno: libc::EINVAL });
        assert!(matches!(e, Error::Os(OsError { errno: libc::EINVAL, .. })), "{e:?}");
        let m = crate::Manager::builder().limit(1 << 20).start().unwrap();
        #[derive(Clone, Copy)]
        #[repr(align(65536))]
        struct Huge(#[allow(dead_code)] u8);
        assert!(matches!(crate::Discardable::try_new_in(Huge(0), &m), Err(Error::Layout)));
    }
}

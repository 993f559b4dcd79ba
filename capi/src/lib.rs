//! The C boundary of `discardable` (DESIGN.md layer 10): `libdiscardable_capi.so`
//! and `libdiscardable_capi.a`, declared in `include/discardable.h`, which
//! cbindgen generates from this crate (`capi/cbindgen.toml`).
//!
//! A thin layer over the public Rust API, with no logic of its own beyond
//! what C needs:
//!
//! - opaque handles (`dsc_manager`, `dsc_handle`, `dsc_cache`,
//!   `dsc_cache_ref`) that are `Box`es of Rust values, and status codes
//!   ([`dsc_status`]) instead of `Result`s;
//! - C pins that nest, count and cross threads, kept by the handle itself
//!   ([`handle`]) on top of the crate's raw pins
//!   ([`Discardable::pin_raw`](discardable::Discardable::pin_raw)), so that
//!   a handle freed while pinned lives until its last unpin;
//! - structs whose `struct_size` comes first, read or written only for the
//!   prefix the caller's size covers ([`prefix`]);
//! - no Rust panic ever crosses the boundary ([`boundary`]): a bug is caught
//!   and the process aborts with a message; a misuse C cannot be told about
//!   through a return value (a second `dsc_free`, an unpin without a pin)
//!   aborts with a message too.
//!
//! Exports only `dsc_*` symbols (`.ci/capi.sh` checks the shared library
//! with `nm`), never an allocator: the process may also run the
//! `LD_PRELOAD` allocator (`libdiscardable_malloc.so`), whose copy of the
//! crate is separate from this one's.
//!
//! Threads: every function may be called from any thread. Offset operations
//! pin for their own duration, so they never race a discard; a write while
//! another thread reads the same bytes is the caller's data race, as with
//! `memcpy` on shared memory.

#![deny(unsafe_op_in_unsafe_fn)]
// The exported names are C's (`dsc_status`, `DSC_OK`), fixed by issue #14.
#![allow(non_camel_case_types)]

pub mod boundary;
pub mod prefix;

// The exported functions, in the header's order (cbindgen follows this
// one): managers, handles, their bytes, the cache, then the status names.
pub mod manager;

pub mod handle;

pub mod bytes;

pub mod cache;

pub mod types;

pub use bytes::{dsc_compare, dsc_fill, dsc_find, dsc_move, dsc_read, dsc_write};
pub use cache::{
    dsc_cache, dsc_cache_free, dsc_cache_get, dsc_cache_new, dsc_cache_put, dsc_cache_ref, dsc_cache_release,
    dsc_cache_remove,
};
pub use handle::{dsc_alloc, dsc_free, dsc_handle, dsc_is_discarded, dsc_pin, dsc_size, dsc_unpin};
pub use manager::{
    dsc_config_init, dsc_global, dsc_global_init, dsc_manager, dsc_manager_free, dsc_manager_new, dsc_manager_stats,
    dsc_reclaim,
};
pub use types::{dsc_config, dsc_policy, dsc_stats, dsc_status, dsc_status_str, RawPolicy, RawStatus};

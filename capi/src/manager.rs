//! Managers: `dsc_config_init`, `dsc_manager_new`/`_free`, the global
//! manager (`dsc_global_init`, `dsc_global`), `dsc_reclaim` and
//! `dsc_manager_stats`.
//!
//! A `dsc_manager` is a boxed [`Manager`] (one `Arc`). Handles and caches
//! hold the manager's arena themselves, so they outlive
//! `dsc_manager_free` safely (they just lose the budget's enforcement by
//! that manager's thread once nothing else holds it). The global manager is
//! a `dsc_manager` in a static that `dsc_manager_free` leaves alone.

use core::ffi::c_int;
use std::sync::OnceLock;

use discardable::{Manager, ManagerBuilder, ReclaimMode};

use crate::boundary::{catch_start, guarded};
use crate::prefix;
use crate::types::{dsc_config, dsc_policy, dsc_stats, dsc_status};

/// A discardable-memory manager: a budget, a replacement policy and the
/// thread that discards unpinned allocations when the budget is exceeded.
/// Opaque to C.
#[derive(Debug)]
pub struct dsc_manager {
    pub(crate) manager: Manager,
    /// The process-wide one: `dsc_manager_free` leaves it alone.
    global: bool,
}

/// The `dsc_manager` of [`Manager::global`], made on first use.
static GLOBAL: OnceLock<dsc_manager> = OnceLock::new();

/// The global `dsc_manager`, starting the global manager with the defaults
/// if nothing started it yet; `None` if it could not start.
pub(crate) fn global() -> Option<&'static dsc_manager> {
    if let Some(g) = GLOBAL.get() {
        return Some(g);
    }
    // `Manager::global` panics only if its thread cannot be spawned; the
    // `OnceLock` inside stays empty then, so a later call may retry.
    let manager = catch_start(|| Manager::global().clone())?;
    Some(GLOBAL.get_or_init(|| dsc_manager { manager, global: true }))
}

/// `m`, or the global manager for NULL.
///
/// # Safety
///
/// `m` is NULL or a live `dsc_manager`.
pub(crate) unsafe fn or_global<'a>(m: *const dsc_manager) -> Option<&'a dsc_manager> {
    if m.is_null() {
        global()
    } else {
        // SAFETY: non-null, and live per the caller's contract.
        Some(unsafe { &*m })
    }
}

/// The defaults `dsc_config_init` writes.
const DEFAULTS: dsc_config = dsc_config {
    struct_size: core::mem::size_of::<dsc_config>(),
    policy: dsc_policy::DSC_POLICY_CLOCK as c_int,
    limit: usize::MAX,
    lazy: 0,
    process_limit: 0,
};

/// The builder `cfg` describes (NULL: the defaults), or why not.
///
/// # Safety
///
/// `cfg` is NULL or points to a readable `dsc_config` of at least its
/// `struct_size` bytes.
unsafe fn builder(cfg: *const dsc_config) -> Result<ManagerBuilder, dsc_status> {
    let cfg = if cfg.is_null() {
        DEFAULTS
    } else {
        // SAFETY: forwarded from the caller's contract.
        unsafe { prefix::read(cfg, DEFAULTS) }.ok_or(dsc_status::DSC_INVALID)?
    };
    let policy = dsc_policy::from_raw(cfg.policy).ok_or(dsc_status::DSC_INVALID)?;
    let mut b = Manager::builder().policy(policy);
    match cfg.limit {
        0 => return Err(dsc_status::DSC_INVALID),
        usize::MAX => {}
        limit => b = b.limit(limit),
    }
    if cfg.lazy != 0 {
        b = b.reclaim_mode(ReclaimMode::Lazy);
    }
    if cfg.process_limit != 0 {
        b = b.process_limit(cfg.process_limit);
    }
    Ok(b)
}

/// Sets every field of `*cfg` to its default and `struct_size` to
/// `sizeof(dsc_config)`: `DSC_POLICY_CLOCK`, `limit = SIZE_MAX` (a quarter
/// of physical memory or of the cgroup's limit), managed mode, no process
/// limit. NULL is a no-op.
///
/// # Safety
///
/// `cfg` is NULL or points to a writable `dsc_config` of this header's
/// size.
#[no_mangle]
pub unsafe extern "C" fn dsc_config_init(cfg: *mut dsc_config) {
    if !cfg.is_null() {
        // SAFETY: non-null, writable, and of this size per the contract.
        unsafe { cfg.write(DEFAULTS) };
    }
}

/// Starts a manager (and its thread) as `cfg` says; `cfg` NULL means the
/// defaults. On success `*out` is the new manager, which
/// `dsc_manager_free` releases. `DSC_INVALID` for a NULL `out`, a
/// `struct_size` too small, an unknown policy or `limit = 0`;
/// `DSC_NO_MEMORY` if the thread or its eventfd could not be had.
///
/// # Safety
///
/// `cfg` is NULL or a readable `dsc_config` of at least its `struct_size`
/// bytes; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dsc_manager_new(cfg: *const dsc_config, out: *mut *mut dsc_manager) -> dsc_status {
    guarded("dsc_manager_new", || {
        if out.is_null() {
            return dsc_status::DSC_INVALID;
        }
        // SAFETY: forwarded from the caller's contract.
        let started = unsafe { builder(cfg) }.and_then(|b| b.start().map_err(|e| dsc_status::from(&e)));
        match started {
            Ok(manager) => {
                let m = Box::into_raw(Box::new(dsc_manager { manager, global: false }));
                // SAFETY: `out` is non-null and writable per the contract.
                unsafe { out.write(m) };
                dsc_status::DSC_OK
            }
            Err(status) => status,
        }
    })
}

/// Releases a manager from `dsc_manager_new`. Its handles and caches stay
/// valid (each holds what it needs); free them as usual. NULL and
/// `dsc_global()` are no-ops.
///
/// # Safety
///
/// `m` is NULL, `dsc_global()`, or a manager from `dsc_manager_new` not
/// freed yet, and no other thread uses it during or after the call.
#[no_mangle]
pub unsafe extern "C" fn dsc_manager_free(m: *mut dsc_manager) {
    guarded("dsc_manager_free", || {
        // SAFETY: NULL or live, per the contract.
        match unsafe { m.as_ref() } {
            None => {}
            Some(g) if g.global => {}
            // SAFETY: made by `Box::into_raw` in `dsc_manager_new`, freed
            // once, here (the caller's contract).
            Some(_) => drop(unsafe { Box::from_raw(m) }),
        }
    })
}

/// Starts the global manager (the one `dsc_global()` returns and
/// `dsc_alloc(NULL, …)` uses) as `cfg` says (NULL: defaults).
/// `DSC_ALREADY_STARTED` if it already started, explicitly or by first
/// use; otherwise as `dsc_manager_new`.
///
/// # Safety
///
/// As `dsc_manager_new`'s `cfg`.
#[no_mangle]
pub unsafe extern "C" fn dsc_global_init(cfg: *const dsc_config) -> dsc_status {
    guarded("dsc_global_init", || {
        if GLOBAL.get().is_some() {
            return dsc_status::DSC_ALREADY_STARTED;
        }
        // SAFETY: forwarded from the caller's contract.
        let b = match unsafe { builder(cfg) } {
            Ok(b) => b,
            Err(status) => return status,
        };
        match b.install_global() {
            Ok(manager) => {
                let _ = GLOBAL.set(dsc_manager { manager: manager.clone(), global: true });
                dsc_status::DSC_OK
            }
            Err(e) => dsc_status::from(&e),
        }
    })
}

/// The process-wide manager, started with the defaults on first use unless
/// `dsc_global_init` configured it; NULL only if it could not start (no
/// thread). Never freed.
#[no_mangle]
pub extern "C" fn dsc_global() -> *mut dsc_manager {
    guarded("dsc_global", || global().map_or(core::ptr::null_mut(), |g| core::ptr::from_ref(g).cast_mut()))
}

/// Synchronously discards unpinned allocations of `m`, in policy order,
/// until at least `bytes` were freed or none is left unpinned, whatever
/// the limit (`SIZE_MAX`: all of them). Returns the bytes the discarded
/// allocations cost. NULL is a no-op (0).
///
/// # Safety
///
/// `m` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn dsc_reclaim(m: *mut dsc_manager, bytes: usize) -> usize {
    guarded("dsc_reclaim", || {
        // SAFETY: NULL or live, per the contract.
        unsafe { m.as_ref() }.map_or(0, |m| m.manager.reclaim(bytes))
    })
}

/// Fills `*out` with `m`'s counters. The caller sets `out->struct_size`
/// first (`sizeof(dsc_stats)`); only the fields it covers are written, and
/// nothing if it does not cover `struct_size` itself. NULL `m` or `out` is
/// a no-op.
///
/// # Safety
///
/// `m` is NULL or a live manager; `out` is NULL or a writable `dsc_stats`
/// of at least its `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn dsc_manager_stats(m: *mut dsc_manager, out: *mut dsc_stats) {
    guarded("dsc_manager_stats", || {
        // SAFETY: NULL or live, per the contract.
        let Some(m) = (unsafe { m.as_ref() }) else { return };
        if out.is_null() {
            return;
        }
        let stats = dsc_stats::from(&m.manager.stats());
        // SAFETY: non-null and writable for its declared size (contract).
        unsafe { prefix::write(out, &stats) };
    })
}

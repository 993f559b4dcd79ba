//! Groups: managers, in any processes of one user that see the same
//! `/dev/shm`, that share memory by weight when a signal they all feel
//! (their common cgroup, the host's `MemAvailable`, PSI) makes them give
//! memory back (DESIGN.md layer 9, issue 15).
//!
//! Owns: the registry, one small file per group under `/dev/shm`
//! (`discardable-group-<name>`, mode 0600, created with `O_EXCL`): a
//! versioned header and fixed-size slots of plain numbers, no pointers and
//! never any cache contents (`slot.rs`); the validated reader that turns
//! its bytes into members or a typed fault (`view.rs`); the weighted
//! max-min fair share (`share.rs`); and a manager's membership (`registry.rs`).
//!
//! How a decision goes: on every pass the manager thread publishes its
//! discardable bytes, pinned bytes, weight, demand and a heartbeat
//! (`Member::publish`); when a shared signal asks it to reclaim `N` bytes,
//! it asks `Member::give_back` which part of `N` is its own: the group
//! keeps what all members hold minus `N`, split by weight, max-min fair,
//! and members above their shares give back in proportion to how far above
//! they are. Every member runs the same pure functions on the same
//! registry, so no member decides for another and no daemon exists.
//!
//! Faults: a registry that is truncated, corrupt, of another version or
//! written by a hostile process of the same user is a [`Fault`]; the member
//! counts it (`Stats::group_faults`) and acts alone for that decision. A
//! member that dies keeps its slot for the lease ([`LEASE_MS`], 3 s), then
//! anyone may take it.
//!
//! Must never: call the manager (the manager asks; this answers), make a
//! second reclaim decision, be reached from the allocator's path, trust a
//! byte of the registry, or wait on another member (the slot protocol is
//! lock-free; the only wait is up to 1 s at join for a creator to finish
//! initialising the file).

#[cfg(not(loom))]
mod registry;
#[cfg(not(loom))]
mod share;
// The loom models use the slot protocol only.
#[cfg_attr(loom, allow(dead_code))]
mod slot;
#[cfg(not(loom))]
mod view;

#[cfg(not(loom))]
pub use reader::{group_members, GroupMember};
#[cfg(not(loom))]
pub(crate) use registry::{path, Member, DIR};

#[cfg(not(loom))]
mod reader;
#[cfg(fuzzing)]
pub(crate) use share::{give_back, shares, Claimant};
#[allow(unused_imports)]
pub(crate) use slot::{Claim, Figures, Hold, Layout, Slot, HEARTBEAT_MS, LEASE_MS};
#[cfg(fuzzing)]
pub(crate) use view::members_of_bytes;

/// The registry's size in bytes (the fuzz facade).
#[cfg(fuzzing)]
pub(crate) const fn slot_bytes() -> usize {
    slot::BYTES
}

/// A valid header's bytes (the fuzz facade).
#[cfg(fuzzing)]
pub(crate) fn header_bytes() -> [u8; 64] {
    let words = [slot::MAGIC, slot::VERSION, slot::SLOTS as u64, slot::SLOT_WORDS as u64, LEASE_MS, 0, 0, 0];
    let mut out = [0u8; 64];
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    out
}
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use view::{Fault, MemberView};

/// The longest group name.
pub(crate) const NAME_MAX: usize = 200;

/// Whether `name` is a valid group name: `[A-Za-z0-9._-]{1,200}`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web.cache-2_x", &"n".repeat(200), "..", "-"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", &"n".repeat(201), "a\0"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}

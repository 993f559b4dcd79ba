//! Internals for the fuzz targets in `fuzz/` only (cargo-fuzz builds with
//! `--cfg fuzzing`); not an API. Re-exported from the crate root as
//! `__fuzz`.
//!
//! Owns: the facade the fuzz targets drive (the page heap and the
//! replacement policies, which are not public).
//!
//! Must never: be built outside `cfg(fuzzing)`.

use crate::policy::{self, Replacement};
use crate::Policy;

/// The page size the page heap measures spans in.
pub fn page_size() -> usize {
    crate::page_heap::global().page_size()
}

/// Gives every retained page of the global page heap back to the OS
/// now (what the allocator's purge timer does once frees go quiet).
pub fn purge() {
    crate::page_heap::global().purge();
}

/// Frees the abandoned class spans that became empty (what the purge
/// timer does on every tick).
pub fn sweep_abandoned() {
    crate::alloc::abandoned::global().sweep();
}

/// A replacement policy as the manager builds it (`policy::build`),
/// behind the `Replacement` trait's methods.
pub struct Replacer(Box<dyn Replacement>);

impl core::fmt::Debug for Replacer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Replacer").field("len", &self.0.len()).finish()
    }
}

impl Replacer {
    /// The implementation of `policy`.
    pub fn new(policy: Policy) -> Self {
        Self(policy::build(policy))
    }
    /// `Replacement::insert`.
    pub fn insert(&mut self, id: u32, cost: usize) {
        self.0.insert(id, cost);
    }
    /// `Replacement::access`.
    pub fn access(&mut self, id: u32, count: u32) {
        self.0.access(id, count);
    }
    /// `Replacement::remove`.
    pub fn remove(&mut self, id: u32) {
        self.0.remove(id);
    }
    /// `Replacement::victim`.
    pub fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        self.0.victim(claim)
    }
    /// `Replacement::len`.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// The group registry's size in bytes.
pub const GROUP_REGISTRY_BYTES: usize = crate::group::slot_bytes();

/// A valid group registry header (its first 64 bytes).
pub fn group_header() -> [u8; 64] {
    crate::group::header_bytes()
}

/// One member as the group reader returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    /// Its slot.
    pub slot: usize,
    /// Its weight.
    pub weight: u32,
    /// Bytes held.
    pub held: u64,
    /// Bytes pinned.
    pub pinned: u64,
    /// Demand.
    pub demand: u64,
}

/// The validated reader (`group::view::members`) over `bytes` as a
/// registry at `now` (ms): the live members, or the fault's text.
pub fn group_members_of_bytes(bytes: &[u8], now: u64) -> Result<Vec<GroupMember>, String> {
    crate::group::members_of_bytes(bytes, now)
        .map(|v| {
            v.into_iter()
                .map(|m| GroupMember {
                    slot: m.slot,
                    weight: m.weight,
                    held: m.held,
                    pinned: m.pinned,
                    demand: m.demand,
                })
                .collect()
        })
        .map_err(|f| f.to_string())
}

/// `group::share::shares` of `keep` over `(weight, demand, floor)` rows.
pub fn group_shares(keep: u64, members: &[(u64, u64, u64)]) -> Vec<u64> {
    let c: Vec<_> =
        members.iter().map(|&(weight, demand, floor)| crate::group::Claimant { weight, demand, floor }).collect();
    crate::group::shares(keep, &c)
}

/// `group::share::give_back`.
pub fn group_give_back(shed: u64, held: &[u64], share: &[u64]) -> Vec<u64> {
    crate::group::give_back(shed, held, share)
}

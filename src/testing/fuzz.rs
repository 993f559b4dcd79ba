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

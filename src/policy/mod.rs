//! Replacement policies: which unpinned allocation to discard next.
//!
//! This module owns the *order* in which the manager offers allocations for
//! discard. Each algorithm sits behind the [`Replacement`] trait and is chosen
//! once, at start-up, from the public [`Policy`] enum.
//!
//! A policy knows allocations only by their dense [`EntryId`] and their cost
//! in bytes. It never touches headers, state words, pages or the OS: the
//! manager reports observed accesses to it ([`Replacement::access`]) and asks
//! it for victims ([`Replacement::victim`]), passing a `claim` callback that
//! tries to take the candidate (it fails when the allocation is pinned).
//!
//! Policies run only on the manager's side, under the table lock; recording an
//! access on the hot path never reaches this module (the handle bumps a
//! counter in its state word, and the manager turns counter changes into
//! [`Replacement::access`] calls when it scans).
//!
//! Must never: allocate per access, block, or call back into the manager.

mod clock;
mod fifo;
mod list;
mod lru;
mod s3fifo;

/// Dense identifier of an allocation in the manager's table.
///
/// Ids are reused after [`Replacement::remove`] or after [`Replacement::victim`]
/// returned them.
pub(crate) type EntryId = u32;

/// The replacement algorithm a [`Manager`](crate::Manager) uses to choose
/// which unpinned allocations to discard first.
///
/// Access is recorded lock-free on the hot path (when a guard drops) and
/// observed by the manager when it scans, so all policies see recency at the
/// granularity of the manager's scans.
///
/// ```
/// use discardable::Policy;
/// assert_eq!(Policy::default(), Policy::Clock);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Least recently used: evicts the allocation unpinned longest ago.
    Lru,
    /// CLOCK (second chance): an accessed allocation survives one sweep of
    /// the hand. Creating an allocation is not an access.
    #[default]
    Clock,
    /// First in, first out by creation; accesses are ignored.
    Fifo,
    /// S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO and a main
    /// FIFO with frequency bits, which keeps a re-accessed hot set through a
    /// one-pass scan of new allocations. No ghost queue at this level.
    S3Fifo,
}

/// A replacement algorithm over entry ids.
///
/// Contract shared by every implementation:
/// - `insert` is called once per id before any other call for that id; it is
///   not an access.
/// - `access`, `remove` for ids that are not (or no longer) present are
///   ignored.
/// - `victim` offers candidates in policy order to `claim`; the first one for
///   which `claim` returns `true` is removed from the policy and returned.
///   A candidate whose claim fails is in use: the policy treats the failure
///   as an access where the algorithm has that notion (LRU, CLOCK, S3-FIFO)
///   and keeps it. Each call offers every present id at most a bounded
///   number of times, so it returns `None` when nothing can be claimed.
pub(crate) trait Replacement: Send {
    /// A new allocation costing `cost` bytes (not an access).
    fn insert(&mut self, id: EntryId, cost: usize);
    /// The allocation was accessed `count >= 1` times since the last report.
    fn access(&mut self, id: EntryId, count: u32);
    /// The allocation left without being chosen (dropped, or discarded by
    /// its owner).
    fn remove(&mut self, id: EntryId);
    /// Picks and removes the next victim, see the trait docs.
    fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId>;
    /// How many allocations the policy tracks.
    fn len(&self) -> usize;
    /// Strong bytes the policy's own tables hold (allocated, used or not).
    fn heap_bytes(&self) -> usize;
    /// Whether accesses change the order (the table then refuses to claim a
    /// candidate accessed since it last looked, see `victim`'s contract).
    fn uses_accesses(&self) -> bool {
        true
    }
}

/// Builds the replacement algorithm for `policy`.
pub(crate) fn build(policy: Policy) -> Box<dyn Replacement> {
    match policy {
        Policy::Lru => Box::new(lru::Lru::default()),
        Policy::Clock => Box::new(clock::Clock::default()),
        Policy::Fifo => Box::new(fifo::Fifo::default()),
        Policy::S3Fifo => Box::new(s3fifo::S3Fifo::default()),
    }
}

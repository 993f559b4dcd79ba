//! The manager's table: every published header, the replacement policy's
//! view of them, and the scan that turns state words into policy events.
//!
//! Owns the headers from the moment it drains them from the arena's intake
//! until it retires them. It lives under the manager's table lock; victims
//! are *claimed* under the lock (one CAS each) and their pages released
//! outside it, by the reclaimer, under an epoch guard.
//!
//! Invariants:
//! - INV-1: a header is retired (never freed directly) only after its owner
//!   marked it dropped, and only through the epoch guard of the pass that
//!   saw the mark; a reclaimer that claimed it and still reads it outside
//!   the lock is pinned in an epoch, so the header outlives that read
//!   (DESIGN.md, protocol invariant 4).
//! - INV-2: an id is tracked by the policy exactly while its slot is
//!   `tracked`: inserted on drain, removed when chosen, discarded or dropped.
//!
//! Must never: release pages or call the OS while holding the lock (the
//! reclaimer does that), or free a header without the epoch.

use core::ptr::NonNull;
use std::time::{Duration, Instant};

use crossbeam_epoch::Guard;

use crate::handle::arena::Arena;
use crate::handle::header::Header;
use crate::handle::store::Block;
use crate::policy::{self, EntryId, Policy, Replacement};

/// A header the table retired, freed when dropped (through the epoch).
struct Retired(NonNull<Header>);

// SAFETY: headers are `Send + Sync`; a retired one is reached by nobody but
// the deferred free that owns this value.
unsafe impl Send for Retired {}

impl Drop for Retired {
    fn drop(&mut self) {
        // SAFETY: created by `Box::leak` in `Arena::register`; retired once
        // by the table (INV-1), freed once, here, after the epoch passed.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// What the table keeps per id beside its header pointer: four bytes, in
/// an array of their own, so an id costs twelve bytes and not the sixteen
/// of a struct with the pointer (a cache pays it per entry), while every
/// pointer stays word-aligned (a leak checker such as LeakSanitizer finds
/// only aligned pointers).
#[derive(Clone, Copy)]
struct Slot {
    /// Access counter seen at the previous scan.
    seen: u16,
    /// Whether the policy tracks this id (INV-2).
    tracked: bool,
    /// Consecutive scans that found the allocation unpinned and untouched.
    idle: u8,
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<Slot>(), 4);

/// Result of one scan of every header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// Cost of allocations pinned at the time of the scan.
    pub pinned_bytes: usize,
    /// Headers retired in this scan.
    pub retired: usize,
    /// Lazy mode: offerable allocations not offered yet.
    pub unoffered: usize,
}

/// How often at most a pass that reclaims only for the manager's own limit
/// reads every state word (a full scan costs a cache miss per allocation);
/// in between, victims are checked for accesses as they are claimed. A
/// large table waits longer: at least [`SCAN_SHARE`] times as long as its
/// last scan took, so scans for the budget cost at most 5 % of a core.
pub(crate) const SCAN_EVERY: Duration = Duration::from_millis(50);
/// See [`SCAN_EVERY`].
const SCAN_SHARE: u32 = 20;

/// The table. See the module docs.
pub struct Table {
    /// Per id: its header (`None`: vacant).
    headers: Vec<Option<NonNull<Header>>>,
    /// Per id: the rest of what the table knows of it.
    slots: Vec<Slot>,
    vacant: Vec<EntryId>,
    policy: Box<dyn Replacement>,
    /// When the last full scan ran, and how long it took.
    last_scan: Option<(Instant, Duration)>,
    /// Bytes of orphans (state INV-8) whose last pin is gone, retired in a
    /// scan: the caller frees them outside the lock ([`Self::take_orphans`]).
    orphans: Vec<Block>,
}

// SAFETY: the header pointers are owned by the table (INV-1) and headers are
// `Send + Sync`.
unsafe impl Send for Table {}

impl core::fmt::Debug for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Table").field("slots", &self.slots.len()).field("tracked", &self.policy.len()).finish()
    }
}

impl Table {
    /// An empty table ordered by `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            headers: Vec::new(),
            slots: Vec::new(),
            vacant: Vec::new(),
            policy: policy::build(policy),
            last_scan: None,
            orphans: Vec::new(),
        }
    }

    /// Strong bytes the table holds for its allocations (its slots, the
    /// vacant list and the policy's tables, allocated or not), and how many
    /// allocations it tracks: what one tracked allocation costs the table
    /// on average, for [`CacheStats::overhead_bytes`](crate::CacheStats).
    #[cfg_attr(loom, allow(dead_code))] // the cache (not built under loom) asks
    pub fn heap_bytes(&self) -> (usize, usize) {
        let bytes = self.headers.capacity() * size_of::<Option<NonNull<Header>>>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.vacant.capacity() * size_of::<EntryId>()
            + self.policy.heap_bytes();
        (bytes, self.slots.len() - self.vacant.len())
    }

    /// Takes newly published headers from `arena` into the table and the
    /// policy, in creation order.
    pub fn drain(&mut self, arena: &Arena) {
        arena.drain_intake(|header| {
            // SAFETY: published headers stay alive until the table retires
            // them (INV-1); this one was just handed over.
            let cost = unsafe { header.as_ref() }.cost();
            let slot = Slot { seen: 0, tracked: true, idle: 0 };
            let id = match self.vacant.pop() {
                Some(id) => {
                    self.headers[id as usize] = Some(header);
                    self.slots[id as usize] = slot;
                    id
                }
                None => {
                    crate::growth::reserve(&mut self.headers, 1);
                    crate::growth::reserve(&mut self.slots, 1);
                    self.headers.push(Some(header));
                    self.slots.push(slot);
                    (self.slots.len() - 1) as EntryId
                }
            };
            self.policy.insert(id, cost);
        });
    }

    /// Reads every state word: reports accesses to the policy, forgets
    /// discarded allocations, and retires headers whose owners are gone
    /// (through `guard`, INV-1).
    #[cfg_attr(not(loom), allow(dead_code))] // the loom models scan without offering
    pub fn scan(&mut self, guard: &Guard) -> Scan {
        self.scan_offering(guard, None)
    }

    /// [`Self::scan`], and in lazy mode also collects into `offers` the
    /// offerable allocations that two consecutive scans found unpinned and
    /// untouched (the caller offers them outside the lock, under `guard`).
    pub(crate) fn scan_offering(&mut self, guard: &Guard, mut offers: Option<&mut Vec<NonNull<Header>>>) -> Scan {
        let started = Instant::now();
        let mut scan = Scan::default();
        let mut retired: Vec<Retired> = Vec::new();
        for (id, (entry, slot)) in self.headers.iter_mut().zip(self.slots.iter_mut()).enumerate() {
            let Some(header) = *entry else { continue };
            // SAFETY: headers in the table are alive until retired (INV-1).
            let h = unsafe { header.as_ref() };
            let s = h.state.load();
            if s.is_dropped() {
                if core::mem::take(&mut slot.tracked) {
                    self.policy.remove(id as EntryId);
                }
                // An owned guard outlives its handle and still reads the
                // header: keep it until the last unpin (state INV-8). The
                // broken variant for the loom models retires it anyway.
                if s.pins() > 0 && !cfg!(discardable_broken_orphan) {
                    continue;
                }
                if s.is_orphaned() {
                    // The owner left the bytes to us; no pin remains or can
                    // come, so they are ours to free (outside the lock).
                    self.orphans.push(h.block());
                }
                *entry = None;
                self.vacant.push(id as EntryId);
                retired.push(Retired(header));
                scan.retired += 1;
                continue;
            }
            if s.is_discarded() {
                if core::mem::take(&mut slot.tracked) {
                    self.policy.remove(id as EntryId);
                }
                continue;
            }
            let accesses = s.accesses();
            let delta = accesses.wrapping_sub(slot.seen);
            if delta != 0 && slot.tracked {
                slot.seen = accesses;
                self.policy.access(id as EntryId, u32::from(delta));
            }
            if s.pins() > 0 {
                scan.pinned_bytes += h.cost();
            }
            if let Some(offers) = offers.as_deref_mut() {
                slot.idle = if delta != 0 || s.pins() > 0 { 0 } else { slot.idle.saturating_add(1) };
                if h.offerable() && !s.is_offered() {
                    scan.unoffered += 1;
                    if slot.idle >= 2 {
                        offers.push(header);
                    }
                }
            }
        }
        if !retired.is_empty() {
            // SAFETY: each owner marked its header dropped and never reads it
            // again, no guard pins it, and the table forgot it above; any
            // reclaimer still reading one is pinned, and the epoch defers the
            // free past its guard (INV-1). One deferred free per scan, not
            // per header: crossbeam collects a bounded number of deferred
            // functions per pin, so a scan that retires thousands must not
            // queue thousands (the caller flushes after the pass). The
            // closure is a `Vec` (three words), stored without boxing.
            unsafe { guard.defer_unchecked(move || drop(retired)) };
        }
        self.last_scan = Some((started, started.elapsed()));
        scan
    }

    /// Whether a full scan is due for a budget pass ([`SCAN_EVERY`]).
    pub(crate) fn scan_is_due(&self) -> bool {
        self.last_scan.is_none_or(|(at, took)| at.elapsed() >= SCAN_EVERY.max(took * SCAN_SHARE))
    }

    /// The bytes of orphans retired since the last call: the caller owns
    /// them and frees them (outside the table lock).
    pub(crate) fn take_orphans(&mut self) -> Vec<Block> {
        core::mem::take(&mut self.orphans)
    }

    /// Claims victims in policy order until their cost reaches `need`, and
    /// then on while one more victim of the last one's cost would stay
    /// within `want` (the slack below a limit: never a large allocation
    /// for a few bytes of slack), or until `max` were taken; appends their
    /// headers to `out`. `last` is the cost of the caller's previous victim
    /// (0: none). A claimed header is the caller's to release (state
    /// INV-4); it stays valid while the caller's epoch guard lives (INV-1).
    /// Returns the claimed cost and the last victim's cost.
    ///
    /// A candidate accessed since the table last looked (its access counter
    /// moved) is not claimed: the policy hears of it as an access, as a full
    /// scan would have told it, so passes between scans keep the policy's
    /// order (CLOCK's second chance, at the hand).
    pub fn claim_victims(
        &mut self,
        need: usize,
        want: usize,
        mut last: usize,
        max: usize,
        out: &mut Vec<NonNull<Header>>,
    ) -> (usize, usize) {
        let mut claimed = 0;
        let mut taken = 0;
        let notices_access = self.policy.uses_accesses();
        while taken < max && (claimed < need || (last > 0 && claimed + last <= want)) {
            let (headers, slots) = (&self.headers, &mut self.slots);
            let victim = self.policy.victim(&mut |id| {
                let slot = &mut slots[id as usize];
                let Some(header) = headers[id as usize] else { return false };
                // SAFETY: headers in the table are alive (INV-1).
                let state = &unsafe { header.as_ref() }.state;
                if notices_access {
                    let accesses = state.load().accesses();
                    if accesses != slot.seen {
                        slot.seen = accesses;
                        return false;
                    }
                }
                state.try_discard()
            });
            let Some(id) = victim else { break };
            let header = self.headers[id as usize].expect("policy chose a vacant slot");
            self.slots[id as usize].tracked = false;
            // SAFETY: alive (INV-1).
            last = unsafe { header.as_ref() }.cost();
            claimed += last;
            out.push(header);
            taken += 1;
        }
        (claimed, last)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for entry in &mut self.headers {
            let Some(header) = entry.take() else { continue };
            // SAFETY: headers in the table are alive until retired (INV-1).
            let s = unsafe { header.as_ref() }.state.load();
            if s.is_dropped() && s.pins() == 0 {
                // SAFETY: the owner is gone, no guard holds it, and, with the
                // table dropping, no reclaimer can reach it any more.
                drop(unsafe { Box::from_raw(header.as_ptr()) });
            }
            // A header whose owner still lives (only possible if the manager
            // thread died), or that an owned guard still pins, is leaked
            // rather than freed under its user; so are an orphan's bytes,
            // whose store may be gone with the arena.
        }
    }
}

//! One shard of a cache: its slice of the key space, under one
//! reader-writer lock, with the inbox through which discard notices reach
//! it.
//!
//! Owns: the shard's [`RawTable`] of items, each a key and either a live
//! entry (the handle to a discardable allocation, owned by the map) or the
//! placeholder of a computation in flight; the clock hand of the capacity
//! sweep; and the inbox. The map owns its entries' handles: every removal
//! goes through [`Map::take`], which drops the handle (`Arena::drop_owner`)
//! and keeps the cache's counters exact.
//!
//! Notices (the manager discarded values of this shard) are pushed onto the
//! inbox without a lock and applied by whoever next holds the write lock:
//! the notifier itself if `try_write` succeeds, any writer before it
//! unlocks, a reader that sees the inbox non-empty after its read, or the
//! manager's flush on its next pass (which it schedules within 10 ms while
//! notices are pending). So dead keys go away even if the cache gets no
//! further calls, and the manager never waits for a shard.
//!
//! Must never: run user code (listeners, closures) under the lock, or free
//! a header (the manager's table does).

use core::num::NonZeroU32;
use core::ptr::{self, NonNull};
use std::sync::Arc;

use parking_lot::RwLock;

use super::flight::Flight;
use super::sketch::Sketch;
use super::table::{Hashed, RawTable};
use super::RemovalCause;
use crate::handle::arena::Arena;
use crate::handle::header::Header;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};

/// A live entry: the map's handle to one discardable allocation, in two
/// words.
///
/// The second word is the value's address and its pointer metadata (the
/// slice length) packed together, so that a lookup can start fetching the
/// value before the header's line arrives, without a third word per entry
/// (an item of a `u64` key is 32 bytes, not 40). Short form (top bit
/// clear): the address in the low [`ADDR_BITS`] bits and a length below
/// 2^15 above them. Long form (top bit set): the length alone, the address
/// then being the header's `data` (a value of 32 Ki elements or more, or an
/// address that does not fit, costs one dependent load more). The packed
/// pointer keeps the allocation's provenance in both forms that carry one.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The allocation's header; the map owns the handle.
    pub(crate) header: NonNull<Header>,
    /// The value's first byte and its metadata ([`Entry::new`]).
    packed: NonNull<u8>,
}

/// Address bits of a short-form entry: user-space addresses on the 64-bit
/// targets Linux runs are below 2^47 (2^48 on some), unless a program maps
/// above that on purpose; such a value takes the long form.
const ADDR_BITS: u32 = 48;
/// [`ADDR_BITS`] as a shift that also compiles on 32-bit targets (where
/// every entry takes the long form).
const SHIFT: u32 = ADDR_BITS % usize::BITS;
/// The long form's flag: the top bit.
const LONG: usize = 1 << (usize::BITS - 1);

impl Entry {
    /// The entry of `header`'s allocation, whose value starts at `data`
    /// with pointer metadata `meta`.
    pub(crate) fn new(header: NonNull<Header>, data: NonNull<u8>, meta: usize) -> Self {
        let addr = data.addr().get();
        let short = usize::BITS == 64 && addr >> SHIFT == 0 && meta < LONG >> SHIFT;
        let packed = if short {
            data.map_addr(|a| a | meta << SHIFT)
        } else {
            // A slice's length is at most `isize::MAX`: below the flag.
            // SAFETY: the flag is set, so the word is not zero.
            unsafe { NonNull::new_unchecked(ptr::without_provenance_mut(LONG | meta)) }
        };
        Self { header, packed }
    }

    /// The header: alive while the map owns the entry.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the map owns the handle; the table frees a header only
        // after `Map::take` dropped it (table INV-1).
        unsafe { self.header.as_ref() }
    }

    /// The value's first byte, if the entry holds it (short form).
    #[inline]
    pub(crate) fn data_hint(&self) -> Option<NonNull<u8>> {
        if self.packed.addr().get() & LONG != 0 {
            return None;
        }
        let data = self.packed.as_ptr().map_addr(|a| a & ((1 << SHIFT) - 1));
        // SAFETY: in the short form the low bits are the value's address,
        // which is not null.
        Some(unsafe { NonNull::new_unchecked(data) })
    }

    /// The value's first byte and its metadata.
    #[inline]
    pub(crate) fn data_and_meta(&self) -> (NonNull<u8>, usize) {
        let word = self.packed.addr().get();
        match self.data_hint() {
            Some(data) => (data, word >> SHIFT),
            None => (self.header().data, word & !LONG),
        }
    }
}

/// The most visits an entry survives on past accesses: a key read often
/// outlives a full sweep of fresh keys read once.
pub(crate) const MAX_CREDIT: u8 = 15;

/// The credit an admitted entry starts with (its insert's own access adds
/// one more at the first visit): a newcomer survives a few sweeps before
/// its hits must speak for it. The admission already kept out keys asked
/// for less often than what they replace; measured on the `hit_ratio`
/// bench, 2 gains a few tenths of a point at 10 % and 50 % capacity over
/// 0, for about as much lost at 1 %.
const NEW_CREDIT: u8 = 2;

/// What a key maps to.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A stored value.
    Ready(Entry),
    /// A computation in flight (single flight).
    Pending(Arc<Flight>),
}

/// One key and what it maps to.
#[derive(Debug)]
pub(crate) struct Item<K> {
    /// The key hash ([`super::inner::key_hash`]): 32 bits, never zero.
    pub(crate) hash: NonZeroU32,
    /// The access counter the capacity sweep saw last (of a live entry).
    seen: u16,
    /// Visits of the sweep this entry may still survive untouched (GCLOCK):
    /// accesses add to it, up to [`MAX_CREDIT`], each visit takes one.
    credit: u8,
    pub(crate) key: K,
    pub(crate) slot: Slot,
}

// The sweep's state sits beside the 32-bit hash, in what would be padding:
// an item of a `u64` key is 32 bytes, with `Option`'s tag in the hash's niche.
#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<Option<Item<u64>>>(), 32);

impl<K> Item<K> {
    /// A key and what it maps to, as new to the sweep.
    pub(crate) fn new(hash: u64, key: K, slot: Slot) -> Self {
        Self { hash: short(hash), seen: 0, credit: NEW_CREDIT, key, slot }
    }
}

impl<K> Hashed for Item<K> {
    #[inline]
    fn hash(&self) -> u64 {
        u64::from(self.hash.get())
    }
}

/// An item's stored hash: the key hash ([`super::inner::key_hash`]) is
/// never zero and fits 32 bits.
#[inline]
fn short(hash: u64) -> NonZeroU32 {
    NonZeroU32::new(hash as u32).unwrap_or(NonZeroU32::MIN)
}

/// The cache-wide counters, kept exact under the shard locks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes: AtomicUsize,
    pub(crate) entries: AtomicUsize,
    pub(crate) inserts: AtomicU64,
    pub(crate) discarded: AtomicU64,
    pub(crate) removed: AtomicU64,
    pub(crate) listener_panics: AtomicU64,
}

/// Keys that left the map, for the listener (called after unlocking).
pub(crate) type Removed<K> = Vec<(K, RemovalCause)>;

/// The data under a shard's lock.
#[derive(Debug)]
pub(crate) struct Map<K> {
    pub(crate) table: RawTable<Item<K>>,
    /// The capacity sweep's clock hand (a slot index).
    hand: usize,
}

// SAFETY: the header pointers are handles the map owns; headers are `Send +
// Sync` and reached only through atomics and immutable fields.
unsafe impl<K: Send> Send for Map<K> {}
// SAFETY: as above; `&Map` only reads.
unsafe impl<K: Sync> Sync for Map<K> {}

impl<K> Map<K> {
    /// Removes the item in slot `i`; drops its handle if it was live
    /// (counted with `cause`). Returns the key and whether it was live.
    pub(crate) fn take(&mut self, i: usize, arena: &Arena, counters: &Counters, cause: RemovalCause) -> (K, bool) {
        let item = self.table.remove(i).expect("take: an empty slot");
        let live = match item.slot {
            Slot::Ready(entry) => {
                let cost = entry.header().cost();
                // SAFETY: the map owned this handle and forgets it here; a
                // guard that still pins it keeps the header (state INV-8).
                unsafe { arena.drop_owner(entry.header) };
                counters.bytes.fetch_sub(cost, Relaxed);
                counters.entries.fetch_sub(1, Relaxed);
                let counter = if cause == RemovalCause::Discarded { &counters.discarded } else { &counters.removed };
                counter.fetch_add(1, Relaxed);
                true
            }
            Slot::Pending(_) => false,
        };
        (item.key, live)
    }

    /// Puts a live entry for `key`; the caller checked the key is absent.
    pub(crate) fn put(&mut self, hash: u64, key: K, entry: Entry, counters: &Counters) {
        counters.bytes.fetch_add(entry.header().cost(), Relaxed);
        counters.entries.fetch_add(1, Relaxed);
        counters.inserts.fetch_add(1, Relaxed);
        self.table.insert(Item::new(hash, key, Slot::Ready(entry)));
    }

    /// Turns the placeholder in slot `i` into a live entry.
    pub(crate) fn fulfil(&mut self, i: usize, entry: Entry, counters: &Counters) {
        counters.bytes.fetch_add(entry.header().cost(), Relaxed);
        counters.entries.fetch_add(1, Relaxed);
        counters.inserts.fetch_add(1, Relaxed);
        let item = self.table.get_mut(i).expect("fulfil: an empty slot");
        item.slot = Slot::Ready(entry);
        (item.seen, item.credit) = (0, NEW_CREDIT);
    }

    /// Removes every item whose hash is in `hashes` and whose value was
    /// discarded, appending their keys to `out`.
    fn purge(&mut self, hashes: &[u64], arena: &Arena, counters: &Counters, out: &mut Removed<K>) {
        for &hash in hashes {
            while let Some(i) = self.table.find(hash, is_dead) {
                out.push((self.take(i, arena, counters, RemovalCause::Discarded).0, RemovalCause::Discarded));
            }
        }
    }

    /// The capacity sweep (GCLOCK over the slots, reading the access
    /// counters the pins bump): visits at most `budget` slots from the hand
    /// and stops on the first entry it would drop, an unpinned one whose
    /// credit ran out (or one already discarded), leaving the hand on it.
    /// Each visit adds the accesses since the last one to the entry's
    /// credit (at most [`MAX_CREDIT`]) and to `sketch` (so the admission
    /// counts hits without the hit path writing anything), and takes one.
    /// Returns the victim's slot, if one was found, and the slots visited.
    pub(crate) fn victim(&mut self, budget: usize, sketch: Option<&Sketch>) -> (Option<usize>, usize) {
        let slots = self.table.slots();
        let mut visited = 0;
        while visited < budget.min(slots) {
            let i = self.hand % slots;
            self.hand = i + 1;
            visited += 1;
            let Some(Item { hash, seen, credit, slot: Slot::Ready(entry), .. }) = self.table.get_mut(i) else {
                continue;
            };
            let s = entry.header().state.load();
            let accesses = s.accesses();
            let touched = accesses.wrapping_sub(*seen).min(u16::from(MAX_CREDIT)) as u8;
            *seen = accesses;
            *credit = (*credit + touched).min(MAX_CREDIT);
            if let Some(sketch) = sketch {
                sketch.add(u64::from(hash.get()), touched);
            }
            if !s.is_discarded() && (s.pins() > 0 || *credit > 0) {
                *credit = credit.saturating_sub(1);
                continue;
            }
            // Unpinned and out of credit (or already discarded). With the
            // write lock held no `get` can pin it now.
            self.hand = i;
            return (Some(i), visited);
        }
        (None, visited)
    }

    /// Entries whose values are gone but whose keys remain.
    pub(crate) fn dead(&self) -> usize {
        self.table.iter().filter(|item| is_dead(item)).count()
    }
}

/// Whether an item's value was discarded.
pub(crate) fn is_dead<K>(item: &Item<K>) -> bool {
    matches!(&item.slot, Slot::Ready(entry) if entry.header().state.load().is_discarded())
}

/// Counts one lookup without a locked instruction (a load and a store):
/// on the hit path a locked add would order every later load behind it.
/// Two threads counting on one shard at the same instant may lose one
/// count; the figures are statistics, not a protocol.
#[inline(always)]
pub(crate) fn tally(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}

/// A batch of discard notices for one shard.
struct Notice {
    hashes: Vec<u64>,
    next: *mut Notice,
}

/// One shard. See the module docs. Cache-line aligned: the lock word, the
/// inbox head and the lookup counters share one line that no other shard
/// touches, so counting a hit costs no extra line transfer.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Shard<K> {
    pub(crate) map: RwLock<Map<K>>,
    inbox: AtomicPtr<Notice>,
    /// Lookups of this shard that found a live value.
    pub(crate) hits: AtomicU64,
    /// Lookups of this shard that found none.
    pub(crate) misses: AtomicU64,
}

impl<K> Default for Shard<K> {
    fn default() -> Self {
        Self {
            map: RwLock::new(Map { table: RawTable::new(), hand: 0 }),
            inbox: AtomicPtr::new(ptr::null_mut()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl<K> Shard<K> {
    /// Pushes notices for `hashes` (no lock).
    pub(crate) fn post(&self, hashes: Vec<u64>) {
        let node = Box::into_raw(Box::new(Notice { hashes, next: ptr::null_mut() }));
        let mut head = self.inbox.load(Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = head };
            // Release publishes the node's contents to the drainer's Acquire.
            match self.inbox.compare_exchange_weak(head, node, Release, Relaxed) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Whether notices wait in the inbox.
    #[inline]
    pub(crate) fn has_notices(&self) -> bool {
        !self.inbox.load(Relaxed).is_null()
    }

    /// Applies every notice in the inbox; the caller holds the write lock.
    pub(crate) fn apply(&self, map: &mut Map<K>, arena: &Arena, counters: &Counters, out: &mut Removed<K>) {
        if !self.has_notices() {
            return;
        }
        // Acquire pairs with `post`'s Release; one swap takes the whole list.
        let mut head = self.inbox.swap(ptr::null_mut(), Acquire);
        while !head.is_null() {
            // SAFETY: nodes come from `Box::into_raw` in `post`, and the swap
            // made this list ours alone.
            let node = unsafe { Box::from_raw(head) };
            map.purge(&node.hashes, arena, counters, out);
            head = node.next;
        }
    }

    /// Applies the inbox if the write lock is free now; `false` if notices
    /// remain.
    pub(crate) fn try_apply(&self, arena: &Arena, counters: &Counters, out: &mut Removed<K>) -> bool {
        if !self.has_notices() {
            return true;
        }
        let Some(mut map) = self.map.try_write() else { return false };
        self.apply(&mut map, arena, counters, out);
        true
    }
}

impl<K> Drop for Shard<K> {
    fn drop(&mut self) {
        let mut head = *self.inbox.get_mut();
        while !head.is_null() {
            // SAFETY: as in `apply`; we are the last user.
            let node = unsafe { Box::from_raw(head) };
            head = node.next;
        }
    }
}

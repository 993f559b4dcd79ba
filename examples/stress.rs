//! The long stress run (issue 5): threads pin, verify, write, discard, drop and re-create
//! discardable handles on a shared table while the manager thread discards continuously (its limit
//! is well below the working set), `Manager::reclaim` runs now and then, and a churn thread
//! allocates, verifies and frees strong memory through [`DiscardAlloc`] as the global allocator
//! (some of it freed on other threads).
//!
//! ```text
//! cargo run --release --example stress -- <seconds> [--mode managed|lazy|both] [--threads N] [--seed S]
//! ```
//!
//! With `--mode both` (the default) each reclaim mode runs for half the duration, each with a
//! fresh manager; lazy mode uses a 5 ms lazy delay so offers and revivals happen during the run.
//!
//! Most operations go to a small hot region of the table, so readers race on the same handles, and
//! threads now and then hammer one contended handle (one pins it in a tight loop while another
//! calls `discard()` on it), so that a pin and a discard meet within nanoseconds.
//!
//! Every word of every allocation encodes its table slot, its generation and its index, so a pin
//! that sees a discarded page (zero), a lazy-mode cookie, another allocation's bytes or a stale
//! generation counts a corruption, and so does a handle marked discarded while pinned, or one that
//! upgrades after it was found discarded. Strong allocations carry a per-allocation byte pattern
//! that is checked when they are resized or freed. A panic on any thread (the manager's included)
//! fails the run, and a watchdog turns a hang into a failure.
//!
//! At the end a summary is printed, and the process exits non-zero if anything was corrupt or
//! leaked, or if a mode did not reach the minimum counts of pins, failed upgrades, discards,
//! discards refused under a pin, strong churn and (lazy mode) offers and revivals, so a run in
//! which nothing raced cannot pass. The minimums are met by a wide margin from 5 s per mode on 2
//! cores; shorter runs may fall short on purpose.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use discardable::{DiscardAlloc, Discardable, Manager, ReclaimMode, Stats};
use parking_lot::RwLock;

#[global_allocator]
static A: DiscardAlloc = DiscardAlloc::new();

/// Table slots; the first [`HOT`] get most of the traffic, so threads meet on the same handles.
const SLOTS: usize = 256;
/// Slots that see most operations.
const HOT: usize = 32;
/// The first slot(s), where threads also hammer one handle: pin, verify, unpin and `discard()` in
/// a tight loop, so that a pin and a discard meet within nanoseconds. Their allocations are small.
const CONTENDED: usize = 1;
/// Pins or discards per hammer operation.
const HAMMER: usize = 256;
/// Lazy mode: spans that two threads pin at the same moment once they were offered, so that two
/// pinners race to revive one allocation.
const RACE_SPANS: usize = 32;
/// How long the racers leave their spans unpinned: several lazy delays, so most are offered.
const RACE_COLD: Duration = Duration::from_millis(15);
/// The manager's limit: under a third of the table's working set (about 3.5 MiB when every slot
/// is alive), so the manager thread discards continuously.
const LIMIT: usize = 1 << 20;
/// Lazy mode: how long a span stays unpinned before it is offered.
const LAZY_DELAY: Duration = Duration::from_millis(5);
/// Largest allocation in words (64 KiB, 16 pages at 4 KiB).
const MAX_WORDS: usize = 8192;
/// Handles a worker keeps after their slot may have moved on (stale clones).
const HELD: usize = 8;
/// Strong bytes the churn thread keeps live at most.
const CHURN_LIVE: usize = 16 << 20;
/// Strong bytes the churn thread allocates per second at most, so it leaves the workers most of
/// the CPU.
const CHURN_RATE: f64 = 64.0 * (1 << 20) as f64;
/// How long the threads of a mode may take to stop after its deadline before the run counts as
/// hung.
const GRACE: Duration = Duration::from_secs(20);
/// Panics on any thread (the manager's included), counted by the hook `main` installs.
static PANICS: AtomicU64 = AtomicU64::new(0);
/// Corruption reports printed in full.
const REPORTS: usize = 20;
/// XORed into every word so that no valid word is zero.
const MAGIC: u64 = 0xA5C3_5A3C_0FF0_9669;
/// The word lazy mode leaves at the start of an offered page (`src/handle/lazy.rs`).
const COOKIE: u64 = 0xD15C_A4DA_B1E0_0FF5;

/// Minimum counts per mode (see the module docs).
const MIN_PINS: u64 = 100_000;
const MIN_FAILED_UPGRADES: u64 = 1_000;
const MIN_DISCARDS: u64 = 1_000;
const MIN_DISCARDS_REFUSED: u64 = 1_000;
const MIN_STRONG_BYTES: u64 = 64 << 20;
const MIN_CROSS_FREES: u64 = 100;
const MIN_OFFERS: u64 = 100;
const MIN_REVIVALS: u64 = 100;

/// Word `i` of the allocation in table slot `slot`, generation `gen`.
fn word(slot: usize, gen: u64, i: usize) -> u64 {
    (((slot as u64) << 48) | ((gen & 0xFFFF_FFFF) << 16) | (i as u64 & 0xFFFF)) ^ MAGIC
}

/// What a wrong word looks like, for the corruption report.
fn describe(w: u64) -> String {
    match w {
        0 => "zero (a discarded or fresh page)".to_string(),
        COOKIE => "the lazy-mode cookie (an offered page)".to_string(),
        _ => {
            let x = w ^ MAGIC;
            format!("{w:#018x} = slot {} gen {} index {}", x >> 48, (x >> 16) & 0xFFFF_FFFF, x & 0xFFFF)
        }
    }
}

/// Byte `i` of the strong allocation tagged `tag`: varies with the offset in the page and with
/// the page, so bytes moved by a page or another allocation's bytes do not match.
fn pattern(tag: u64, i: usize) -> u8 {
    (tag as usize ^ i ^ (i >> 8) ^ (i >> 12).wrapping_mul(37)) as u8
}

/// Xorshift64: each thread owns one, seeded deterministically.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Splitmix the seed so that neighbouring seeds give unrelated streams (and never zero).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Roughly log-uniform in `lo..=hi`.
    fn log_between(&mut self, lo: usize, hi: usize) -> usize {
        let bits = usize::BITS - hi.leading_zeros();
        let top = 1usize << (1 + self.below(bits as usize));
        (lo + self.below(top)).min(hi)
    }
}

/// Counter indices: per-thread arrays flushed into shared atomics.
mod c {
    pub const PINS: usize = 0;
    pub const FAILED_UPGRADES: usize = 1;
    pub const WRITES: usize = 2;
    pub const FAILED_UPGRADE_MUTS: usize = 3;
    pub const SHARED_AT_WRITE: usize = 4;
    pub const MANUAL_DISCARDS: usize = 5;
    pub const DISCARDS_REFUSED: usize = 6;
    pub const CREATES: usize = 7;
    pub const DROPS: usize = 8;
    pub const STALE_PINS: usize = 9;
    pub const RECLAIMS: usize = 10;
    pub const RECLAIMED_BYTES: usize = 11;
    pub const STRONG_ALLOCS: usize = 12;
    pub const STRONG_BYTES: usize = 13;
    pub const STRONG_RESIZES: usize = 14;
    pub const CROSS_FREES: usize = 15;
    // Failures (see `FAILURES`).
    pub const CORRUPT_PINS: usize = 16;
    pub const CORRUPT_WORDS: usize = 17;
    pub const BAD_LENGTHS: usize = 18;
    pub const RESURRECTIONS: usize = 19;
    pub const STRONG_CORRUPTIONS: usize = 20;
    pub const ERRORS: usize = 21;
    pub const DISCARDED_UNDER_PIN: usize = 22;
    pub const RACE_PINS: usize = 23;
    pub const N: usize = 24;
    /// Counters that fail the run when non-zero.
    pub const FAILURES: [usize; 7] =
        [CORRUPT_PINS, CORRUPT_WORDS, BAD_LENGTHS, RESURRECTIONS, STRONG_CORRUPTIONS, ERRORS, DISCARDED_UNDER_PIN];
    pub const NAMES: [&str; N] = [
        "pins",
        "failed upgrades",
        "writes (upgrade_mut)",
        "failed upgrade_mut",
        "shared at write",
        "discard() won",
        "discard() refused (pinned)",
        "creates",
        "slot drops",
        "stale-handle pins",
        "reclaim calls",
        "reclaimed bytes",
        "strong allocations",
        "strong bytes churned",
        "strong resizes",
        "cross-thread frees",
        "CORRUPT pins",
        "CORRUPT words",
        "BAD lengths",
        "RESURRECTIONS",
        "STRONG corruptions",
        "ERRORS",
        "DISCARDED under a pin",
        "revive-race pins",
    ];
}

/// One thread's counters, flushed into [`Ctx::totals`] now and then.
struct Local([u64; c::N]);

impl Local {
    fn new() -> Self {
        Self([0; c::N])
    }

    fn add(&mut self, i: usize, n: u64) {
        self.0[i] += n;
    }

    fn flush(&mut self, totals: &[AtomicU64; c::N]) {
        for (t, n) in totals.iter().zip(&mut self.0) {
            if *n != 0 {
                t.fetch_add(core::mem::take(n), Relaxed);
            }
        }
    }
}

/// A live allocation: its handle and what its words must be.
struct Entry {
    slot: usize,
    gen: u64,
    len: usize,
    handle: Discardable<[u64]>,
}

impl Entry {
    fn expect(&self) -> Expect {
        Expect { slot: self.slot, gen: self.gen, len: self.len, cost: self.handle.cost() }
    }
}

/// What an allocation's words must be.
#[derive(Clone, Copy)]
struct Expect {
    slot: usize,
    gen: u64,
    len: usize,
    cost: usize,
}

/// A strong allocation of the churn thread.
struct Strong {
    tag: u64,
    data: Vec<u8>,
}

/// What the threads of one mode share.
struct Ctx {
    manager: Manager,
    table: Vec<RwLock<Option<Arc<Entry>>>>,
    next_gen: AtomicU64,
    stop: AtomicBool,
    totals: [AtomicU64; c::N],
    reports: Mutex<Vec<String>>,
    mode: &'static str,
}

impl Ctx {
    fn total(&self, i: usize) -> u64 {
        self.totals[i].load(Relaxed)
    }

    /// Records a failure; the first [`REPORTS`] are printed as they happen.
    fn report(&self, msg: String) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if reports.len() < REPORTS {
            eprintln!("stress [{}]: FAILURE: {msg}", self.mode);
            reports.push(msg);
        }
    }

    /// Checks `words` against `entry`; returns whether they were all right.
    fn check(&self, what: &str, entry: Expect, words: &[u64], local: &mut Local) -> bool {
        let mut ok = true;
        if words.len() != entry.len {
            local.add(c::BAD_LENGTHS, 1);
            self.report(format!(
                "{what}: slot {} gen {}: length {} != {}",
                entry.slot,
                entry.gen,
                words.len(),
                entry.len
            ));
            ok = false;
        }
        let mut bad = 0u64;
        let mut first = None;
        for (i, &w) in words.iter().enumerate() {
            if w != word(entry.slot, entry.gen, i) {
                bad += 1;
                first.get_or_insert((i, w));
            }
        }
        if let Some((i, w)) = first {
            local.add(c::CORRUPT_PINS, 1);
            local.add(c::CORRUPT_WORDS, bad);
            self.report(format!(
                "{what}: slot {} gen {} ({} words, cost {}): {bad} bad word(s), first at index {i}: expected {}, got {}",
                entry.slot,
                entry.gen,
                entry.len,
                entry.cost,
                describe(word(entry.slot, entry.gen, i)),
                describe(w)
            ));
            ok = false;
        }
        ok
    }

    /// A fresh allocation for `slot`: small slots (at most 2 KiB) and multi-page spans, mixed.
    fn create(&self, slot: usize, rng: &mut Rng, local: &mut Local) -> Option<Arc<Entry>> {
        let len = match rng.below(100) {
            _ if slot < CONTENDED => 1 + rng.below(512),
            0 => 0,
            1..=49 => 1 + rng.below(256),
            50..=64 => 257 + rng.below(256),
            _ => 513 + rng.below(MAX_WORDS - 512),
        };
        self.create_len(&self.manager, slot, len, local)
    }

    /// A fresh allocation of `len` words for `slot`, from `manager`.
    fn create_len(&self, manager: &Manager, slot: usize, len: usize, local: &mut Local) -> Option<Arc<Entry>> {
        let gen = self.next_gen.fetch_add(1, Relaxed);
        let data: Vec<u64> = (0..len).map(|i| word(slot, gen, i)).collect();
        match Discardable::try_from_slice_in(&data, manager) {
            Ok(handle) => {
                local.add(c::CREATES, 1);
                Some(Arc::new(Entry { slot, gen, len, handle }))
            }
            Err(e) => {
                local.add(c::ERRORS, 1);
                self.report(format!("create: slot {slot}: {e}"));
                None
            }
        }
    }

    /// Replaces the slot's allocation if it is missing or discarded.
    fn refill(&self, slot: usize, rng: &mut Rng, local: &mut Local) {
        let mut g = self.table[slot].write();
        if g.as_ref().is_none_or(|e| e.handle.is_discarded()) {
            let old = core::mem::replace(&mut *g, self.create(slot, rng, local));
            drop(g);
            drop(old); // maybe the last reference: the handle drops here, outside the lock
        }
    }

    /// Pins `entry` up to `burst` times, verifying every word under each pin and sometimes
    /// holding the pin longer if `linger`. Returns whether the allocation was found discarded.
    fn read(&self, entry: &Entry, burst: usize, linger: bool, rng: &mut Rng, local: &mut Local) -> bool {
        for _ in 0..burst {
            let Some(pinned) = entry.handle.upgrade() else {
                local.add(c::FAILED_UPGRADES, 1);
                // Once discarded, discarded for good.
                if !entry.handle.is_discarded() || entry.handle.upgrade().is_some() {
                    local.add(c::RESURRECTIONS, 1);
                    self.report(format!("slot {} gen {}: upgrade failed, then succeeded", entry.slot, entry.gen));
                }
                return true;
            };
            local.add(c::PINS, 1);
            if !self.check("pin", entry.expect(), &pinned, local) || !self.still_pinned("pin", entry, local) {
                return false;
            }
            // Now and then hold the pin longer (other threads run, the manager tries to discard
            // it) and check that nothing moved.
            if linger && rng.below(16) == 0 {
                thread::yield_now();
                self.check("pin after yield", entry.expect(), &pinned, local);
                self.still_pinned("pin after yield", entry, local);
            }
        }
        false
    }

    /// Pins (or discards) the handle in `slot` in a tight loop: a pinner (which re-creates the
    /// handle when it is gone) meets the discarder of another thread hammering the same slot.
    fn hammer(&self, slot: usize, rng: &mut Rng, local: &mut Local) {
        let pinner = rng.below(2) == 0;
        let mut entry = self.table[slot].read().clone();
        for _ in 0..HAMMER {
            let gone = match &entry {
                Some(e) if pinner => self.read(e, 1, false, rng, local),
                Some(e) => {
                    self.discard(e, local);
                    e.handle.is_discarded()
                }
                None => true,
            };
            if gone {
                // Only pinners re-create, so a discarder alone does not just churn allocations.
                if pinner {
                    self.refill(slot, rng, local);
                }
                entry = self.table[slot].read().clone();
            }
        }
    }

    /// Checks that `entry`, which the caller pins, is not marked discarded: a pin excludes every
    /// discard (the manager's, `discard()`'s and the kernel's in lazy mode).
    fn still_pinned(&self, what: &str, entry: &Entry, local: &mut Local) -> bool {
        if !entry.handle.is_discarded() {
            return true;
        }
        local.add(c::DISCARDED_UNDER_PIN, 1);
        self.report(format!("{what}: slot {} gen {}: discarded while pinned", entry.slot, entry.gen));
        false
    }

    /// Rewrites a uniquely owned allocation with a new generation through `upgrade_mut`; `false`
    /// if it was discarded.
    fn rewrite(&self, entry: &mut Entry, local: &mut Local) -> bool {
        let mut expect = entry.expect();
        let Some(mut pinned) = entry.handle.upgrade_mut() else {
            local.add(c::FAILED_UPGRADE_MUTS, 1);
            if !entry.handle.is_discarded() || entry.handle.upgrade().is_some() {
                local.add(c::RESURRECTIONS, 1);
                self.report(format!(
                    "slot {} gen {}: upgrade_mut failed, then upgrade succeeded",
                    entry.slot, entry.gen
                ));
            }
            return false;
        };
        local.add(c::PINS, 1);
        self.check("upgrade_mut before write", expect, &pinned, local);
        let gen = self.next_gen.fetch_add(1, Relaxed);
        for (i, w) in pinned.iter_mut().enumerate() {
            *w = word(entry.slot, gen, i);
        }
        entry.gen = gen;
        expect.gen = gen;
        local.add(c::WRITES, 1);
        thread::yield_now(); // let the manager try to take it while the unique pin lives
        self.check("upgrade_mut after write", expect, &pinned, local);
        true
    }

    /// Asks for a discard now; checks the outcome.
    fn discard(&self, entry: &Entry, local: &mut Local) {
        if entry.handle.discard() {
            local.add(c::MANUAL_DISCARDS, 1);
            if entry.handle.upgrade().is_some() || !entry.handle.is_discarded() {
                local.add(c::RESURRECTIONS, 1);
                self.report(format!("slot {} gen {}: upgrade succeeded after discard()", entry.slot, entry.gen));
            }
        } else if !entry.handle.is_discarded() {
            local.add(c::DISCARDS_REFUSED, 1); // pinned by someone (or being offered or revived)
        }
    }
}

/// A table slot: mostly from the hot region, so threads meet on the same handles.
fn pick(rng: &mut Rng) -> usize {
    if rng.below(10) < 7 {
        rng.below(HOT)
    } else {
        rng.below(SLOTS)
    }
}

fn worker(ctx: &Ctx, seed: u64, frees: Receiver<Strong>) {
    let mut rng = Rng::new(seed);
    let mut local = Local::new();
    let mut held: Vec<Arc<Entry>> = Vec::with_capacity(HELD);
    let mut ops = 0u64;
    while !ctx.stop.load(Relaxed) {
        ops += 1;
        if ops % 256 == 0 {
            local.flush(&ctx.totals);
            // Strong blocks allocated on the churn thread, verified and freed here.
            while let Ok(s) = frees.try_recv() {
                verify_strong(ctx, &s, &mut local);
                local.add(c::CROSS_FREES, 1);
            }
        }
        let slot = pick(&mut rng);
        match rng.below(1000) {
            // Hammer a contended slot.
            0..=39 => ctx.hammer(rng.below(CONTENDED), &mut rng, &mut local),
            // Read: pin and verify, a burst of pins on one handle.
            40..=549 => {
                let entry = ctx.table[slot].read().clone();
                match entry {
                    Some(entry) => {
                        let burst = 1 + rng.below(4);
                        if ctx.read(&entry, burst, true, &mut rng, &mut local) {
                            // Leave discarded handles in place for a while so others meet them.
                            if rng.below(4) == 0 {
                                ctx.refill(slot, &mut rng, &mut local);
                            }
                        }
                    }
                    None => ctx.refill(slot, &mut rng, &mut local),
                }
            }
            // Pin a stale handle: its slot may hold another allocation by now.
            550..=599 => {
                if !held.is_empty() {
                    let entry = Arc::clone(&held[rng.below(held.len())]);
                    let before = local.0[c::PINS];
                    ctx.read(&entry, 1, true, &mut rng, &mut local);
                    local.add(c::STALE_PINS, local.0[c::PINS] - before);
                }
            }
            // Write in place: unique through `Arc::get_mut` under the slot's write lock.
            600..=679 => {
                let mut g = ctx.table[slot].write();
                let Some(arc) = g.as_mut() else { continue };
                match Arc::get_mut(arc) {
                    Some(entry) => {
                        if !ctx.rewrite(entry, &mut local) {
                            let old = core::mem::replace(&mut *g, ctx.create(slot, &mut rng, &mut local));
                            drop(g);
                            drop(old);
                        }
                    }
                    None => local.add(c::SHARED_AT_WRITE, 1),
                }
            }
            // Write after taking the handle out of the table: unique through `Arc::try_unwrap`,
            // with no lock held; put back unless the slot was refilled meanwhile.
            680..=719 => {
                let taken = ctx.table[slot].write().take();
                let Some(arc) = taken else { continue };
                match Arc::try_unwrap(arc) {
                    Ok(mut entry) => {
                        if ctx.rewrite(&mut entry, &mut local) {
                            let mut g = ctx.table[slot].write();
                            if g.is_none() {
                                *g = Some(Arc::new(entry));
                            } else {
                                drop(g);
                                drop(entry);
                                local.add(c::DROPS, 1);
                            }
                        } else {
                            drop(entry);
                            local.add(c::DROPS, 1);
                        }
                    }
                    // Someone else still holds it; the last holder drops it on its thread.
                    Err(arc) => {
                        local.add(c::SHARED_AT_WRITE, 1);
                        drop(arc);
                        local.add(c::DROPS, 1);
                    }
                }
            }
            // Discard now (it may be pinned by another thread).
            720..=839 => {
                let entry = ctx.table[slot].read().clone();
                if let Some(entry) = entry {
                    ctx.discard(&entry, &mut local);
                }
            }
            // Drop and re-create with another size.
            840..=919 => {
                let fresh = ctx.create(slot, &mut rng, &mut local);
                let old = core::mem::replace(&mut *ctx.table[slot].write(), fresh);
                drop(old);
                local.add(c::DROPS, 1);
            }
            // Drop, leaving the slot empty.
            920..=959 => {
                let old = ctx.table[slot].write().take();
                drop(old);
                local.add(c::DROPS, 1);
            }
            // Keep a clone past its slot's life.
            960..=997 => {
                if let Some(entry) = ctx.table[slot].read().clone() {
                    if held.len() == HELD {
                        held.swap_remove(rng.below(HELD));
                    }
                    held.push(entry);
                }
            }
            // A synchronous reclaim from a worker.
            _ => {
                let freed = ctx.manager.reclaim(4096 << rng.below(6));
                local.add(c::RECLAIMS, 1);
                local.add(c::RECLAIMED_BYTES, freed as u64);
            }
        }
    }
    for entry in &held {
        ctx.read(entry, 1, false, &mut rng, &mut local);
    }
    drop(held);
    while let Ok(s) = frees.try_recv() {
        verify_strong(ctx, &s, &mut local);
    }
    local.flush(&ctx.totals);
}

fn verify_strong(ctx: &Ctx, s: &Strong, local: &mut Local) -> bool {
    // A branch-free pass first (it vectorizes); the position only when something differs.
    let diff = s.data.iter().enumerate().fold(0u8, |acc, (i, &b)| acc | (b ^ pattern(s.tag, i)));
    let bad = if diff == 0 { None } else { s.data.iter().enumerate().position(|(i, &b)| b != pattern(s.tag, i)) };
    if let Some(i) = bad {
        local.add(c::STRONG_CORRUPTIONS, 1);
        ctx.report(format!(
            "strong allocation {} ({} bytes at {:p}): byte {i} is {:#04x}, expected {:#04x}",
            s.tag,
            s.data.len(),
            s.data.as_ptr(),
            s.data[i],
            pattern(s.tag, i)
        ));
    }
    bad.is_none()
}

/// A strong allocation size: mostly small, some pages, a few large spans.
fn strong_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => rng.log_between(1, 1024),
        60..=89 => rng.log_between(1024, 64 << 10),
        _ => rng.log_between(64 << 10, 512 << 10),
    }
}

fn churn(ctx: &Ctx, seed: u64, sinks: Vec<Sender<Strong>>) {
    let mut rng = Rng::new(seed);
    let mut local = Local::new();
    let mut live: Vec<Strong> = Vec::new();
    let mut live_bytes = 0usize;
    let mut tag = seed;
    let mut ops = 0u64;
    let mut churned = 0u64;
    let start = Instant::now();
    while !ctx.stop.load(Relaxed) {
        ops += 1;
        if ops % 64 == 0 {
            churned += local.0[c::STRONG_BYTES];
            local.flush(&ctx.totals);
        }
        while (churned + local.0[c::STRONG_BYTES]) as f64 > CHURN_RATE * start.elapsed().as_secs_f64() {
            thread::sleep(Duration::from_millis(1));
        }
        let r = rng.below(100);
        if live.is_empty() || (r < 50 && live_bytes < CHURN_LIVE) {
            let len = strong_size(&mut rng);
            tag += 1;
            let mut data = Vec::new();
            if rng.below(2) == 0 {
                data.extend((0..len).map(|i| pattern(tag, i)));
            } else {
                // Grown a page at a time: reallocations, in place or moving.
                for at in (0..len).step_by(4096) {
                    data.extend((at..len.min(at + 4096)).map(|i| pattern(tag, i)));
                }
            }
            live_bytes += len;
            local.add(c::STRONG_ALLOCS, 1);
            local.add(c::STRONG_BYTES, len as u64);
            live.push(Strong { tag, data });
        } else if r < 60 {
            // Resize in place or by moving: grow with the pattern, or shrink and return memory.
            let pick = rng.below(live.len());
            let s = &mut live[pick];
            verify_strong(ctx, s, &mut local);
            let old = s.data.len();
            let len = strong_size(&mut rng);
            if len > old {
                s.data.extend((old..len).map(|i| pattern(s.tag, i)));
                local.add(c::STRONG_BYTES, (len - old) as u64);
            } else {
                s.data.truncate(len);
                s.data.shrink_to_fit();
            }
            live_bytes = live_bytes + len - old;
            local.add(c::STRONG_RESIZES, 1);
        } else {
            let s = live.swap_remove(rng.below(live.len()));
            live_bytes -= s.data.len();
            // Half are freed by a worker (a remote free to this thread's heap).
            if rng.below(2) == 0 {
                if let Err(mpsc::SendError(s)) = sinks[rng.below(sinks.len())].send(s) {
                    verify_strong(ctx, &s, &mut local);
                }
            } else {
                verify_strong(ctx, &s, &mut local);
            }
        }
    }
    for s in &live {
        verify_strong(ctx, s, &mut local);
    }
    local.flush(&ctx.totals);
}

/// Where the two revive racers meet.
struct Rendezvous {
    /// A lazy-mode manager of their own, with room for all their spans: the main manager would
    /// discard these cold spans before they are offered.
    manager: Manager,
    spans: RwLock<Vec<Arc<Entry>>>,
    arrived: AtomicU64,
}

impl Rendezvous {
    /// Waits for the other racer to arrive for the `n`th time; `false` once the mode stops.
    fn meet(&self, ctx: &Ctx, n: &mut u64) -> bool {
        *n += 2;
        self.arrived.fetch_add(1, Relaxed);
        let mut spins = 0u32;
        while self.arrived.load(Relaxed) < *n {
            if ctx.stop.load(Relaxed) {
                return false;
            }
            // Spin, so both leave at nearly the same instant; yield now and then on a busy host.
            spins += 1;
            if spins % 1024 == 0 {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        true
    }
}

/// Lazy mode: one of two threads that leave [`RACE_SPANS`] spans cold until they are offered, then
/// pin them all at the same moment, in the same order, so that two pinners race to revive each.
fn revive_racer(ctx: &Ctx, rendezvous: &Rendezvous, leader: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut local = Local::new();
    let mut n = 0;
    loop {
        if leader {
            let spans = (0..RACE_SPANS)
                .filter_map(|i| {
                    ctx.create_len(&rendezvous.manager, SLOTS + i, 257 + rng.below(4 * 512 - 256), &mut local)
                })
                .collect();
            *rendezvous.spans.write() = spans;
        }
        if !rendezvous.meet(ctx, &mut n) {
            break;
        }
        let spans = rendezvous.spans.read().clone();
        thread::sleep(RACE_COLD);
        if !rendezvous.meet(ctx, &mut n) {
            break;
        }
        for entry in &spans {
            let before = local.0[c::PINS];
            ctx.read(entry, 1, false, &mut rng, &mut local);
            local.add(c::RACE_PINS, local.0[c::PINS] - before);
        }
        local.flush(&ctx.totals);
        drop(spans);
        // Both are done with this round's spans before the leader replaces them.
        if !rendezvous.meet(ctx, &mut n) {
            break;
        }
    }
    rendezvous.spans.write().clear();
    local.flush(&ctx.totals);
}

/// One line of progress.
fn progress(ctx: &Ctx, start: Instant) -> String {
    let st = ctx.manager.stats();
    format!(
        "stress [{}] {:>5.1?}: {} pins, {} failed upgrades, {} discards, {} offers, {} revivals, {} MiB strong churned",
        ctx.mode,
        start.elapsed(),
        ctx.total(c::PINS),
        ctx.total(c::FAILED_UPGRADES),
        st.discarded_count,
        st.offers,
        st.revivals,
        ctx.total(c::STRONG_BYTES) >> 20
    )
}

/// Turns a hang into a failure: if the threads of a mode have not stopped [`GRACE`] after its
/// deadline, prints what is known and exits non-zero.
fn watchdog(ctx: &Ctx, joined: &AtomicBool, start: Instant, duration: Duration) {
    while !joined.load(Relaxed) {
        if start.elapsed() > duration + GRACE {
            println!("{}", progress(ctx, start));
            for (name, t) in c::NAMES.iter().zip(&ctx.totals) {
                println!("  {name:<28} {}", t.load(Relaxed));
            }
            println!("  {:<28} {}", "panics", PANICS.load(Relaxed));
            println!("stress: FAIL");
            println!("  {}: HANG: threads still running {GRACE:?} after the deadline", ctx.mode);
            std::process::exit(1);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The outcome of one mode.
struct Outcome {
    mode: &'static str,
    elapsed: Duration,
    counts: [u64; c::N],
    stats: Stats,
    after_drop: Stats,
    /// The revive racers' manager, after they dropped their spans.
    race: Stats,
    failures: Vec<String>,
}

fn run_mode(mode: ReclaimMode, secs: f64, threads: usize, seed: u64) -> Outcome {
    let name = if mode == ReclaimMode::Lazy { "lazy" } else { "managed" };
    let manager = Manager::builder()
        .limit(LIMIT)
        .reclaim_mode(mode)
        .lazy_delay(LAZY_DELAY)
        .start()
        .unwrap_or_else(|e| panic!("stress: cannot start the manager: {e}"));
    let ctx = Ctx {
        manager,
        table: (0..SLOTS).map(|_| RwLock::new(None)).collect(),
        next_gen: AtomicU64::new(1),
        stop: AtomicBool::new(false),
        totals: [const { AtomicU64::new(0) }; c::N],
        reports: Mutex::new(Vec::new()),
        mode: name,
    };
    let seed = seed ^ if mode == ReclaimMode::Lazy { 0x1a2 } else { 0 };
    let mut rng = Rng::new(seed);
    let mut local = Local::new();
    for slot in 0..SLOTS {
        *ctx.table[slot].write() = ctx.create(slot, &mut rng, &mut local);
    }
    local.flush(&ctx.totals);
    let duration = Duration::from_secs_f64(secs);
    eprintln!("stress [{name}]: {threads} workers + churn for {duration:.1?} (limit {} KiB)", LIMIT >> 10);
    let start = Instant::now();
    let joined = AtomicBool::new(false);
    let rendezvous = Rendezvous {
        manager: Manager::builder()
            .limit(64 << 20)
            .reclaim_mode(ReclaimMode::Lazy)
            .lazy_delay(LAZY_DELAY)
            .start()
            .unwrap_or_else(|e| panic!("stress: cannot start the racers' manager: {e}")),
        spans: RwLock::new(Vec::new()),
        arrived: AtomicU64::new(0),
    };
    thread::scope(|s| {
        let ctx = &ctx;
        let mut threads_of_mode = Vec::new();
        let mut sinks = Vec::new();
        for t in 0..threads {
            let (tx, rx) = mpsc::channel();
            sinks.push(tx);
            let worker_seed = seed.wrapping_add(t as u64 + 1);
            let worker = thread::Builder::new()
                .name(format!("stress-worker-{t}"))
                .spawn_scoped(s, move || worker(ctx, worker_seed, rx))
                .expect("spawn a worker");
            threads_of_mode.push(worker);
        }
        let churn = thread::Builder::new()
            .name("stress-churn".into())
            .spawn_scoped(s, move || churn(ctx, seed.wrapping_add(0xC4C4), sinks))
            .expect("spawn the churn thread");
        threads_of_mode.push(churn);
        if mode == ReclaimMode::Lazy {
            let rendezvous = &rendezvous;
            for leader in [true, false] {
                let racer = thread::Builder::new()
                    .name("stress-revive-racer".into())
                    .spawn_scoped(s, move || revive_racer(ctx, rendezvous, leader, seed ^ u64::from(leader)))
                    .expect("spawn a revive racer");
                threads_of_mode.push(racer);
            }
        }
        let joined = &joined;
        thread::Builder::new()
            .name("stress-watchdog".into())
            .spawn_scoped(s, move || watchdog(ctx, joined, start, duration))
            .expect("spawn the watchdog");
        // This thread: an occasional reclaim, and progress now and then.
        let mut last_progress = Instant::now();
        while start.elapsed() < duration {
            thread::sleep(Duration::from_millis(10));
            let bytes = rng.log_between(4096, 256 << 10);
            let reclaim = std::panic::catch_unwind(AssertUnwindSafe(|| ctx.manager.reclaim(bytes)));
            if PANICS.load(Relaxed) != 0 {
                eprintln!("stress [{name}]: a thread panicked: stopping early");
                break;
            }
            let freed = reclaim.unwrap_or(0);
            local.add(c::RECLAIMS, 1);
            local.add(c::RECLAIMED_BYTES, freed as u64);
            if last_progress.elapsed() >= Duration::from_secs(5) {
                last_progress = Instant::now();
                eprintln!("{}", progress(ctx, start));
            }
        }
        ctx.stop.store(true, Relaxed);
        for t in threads_of_mode {
            // A panic was counted (and printed) by the hook `main` installs.
            let _ = t.join();
        }
        joined.store(true, Relaxed);
    });
    let elapsed = start.elapsed();
    local.flush(&ctx.totals);
    let stats = ctx.manager.stats();
    // Nothing may be left once every handle is gone.
    let Ctx { manager, table, totals, reports, .. } = ctx;
    drop(table);
    let after_drop = manager.stats();
    let mut failures = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    let counts = totals.map(|t| t.into_inner());
    let panics = PANICS.swap(0, Relaxed);
    if panics != 0 {
        failures.push(format!("{panics} thread(s) panicked (see above)"));
    }
    let race = rendezvous.manager.stats();
    for (whose, st) in [("the manager", &after_drop), ("the racers' manager", &race)] {
        if st.allocations != 0 || st.discardable_bytes != 0 {
            failures.push(format!(
                "leak: {whose} has {} handles and {} discardable bytes left after every handle was dropped",
                st.allocations, st.discardable_bytes
            ));
        }
    }
    Outcome { mode: name, elapsed, counts, stats, after_drop, race, failures }
}

/// Prints the summary of `o` and returns what failed.
fn summarize(o: &Outcome) -> Vec<String> {
    let s = &o.stats;
    println!("== {} mode: {:.2?}", o.mode, o.elapsed);
    for (name, n) in c::NAMES.iter().zip(&o.counts) {
        println!("  {name:<28} {n}");
    }
    println!("  {:<28} {}", "discards (stats)", s.discarded_count);
    println!("  {:<28} {}", "discarded bytes (stats)", s.discarded_bytes);
    println!("  {:<28} {}", "limit reclaims (stats)", s.limit_reclaims);
    println!("  {:<28} {}", "offers (stats)", s.offers);
    println!("  {:<28} {}", "revivals (stats)", s.revivals);
    println!("  {:<28} {}", "kernel discards (stats)", s.kernel_discards);
    if o.mode == "lazy" {
        let r = &o.race;
        println!(
            "  {:<28} {} offers, {} revivals, {} discards",
            "racers' manager (stats)", r.offers, r.revivals, r.discarded_count
        );
    }
    println!("  {:<28} {} / limit {}", "discardable bytes at end", s.discardable_bytes, s.limit);
    println!("  {:<28} {}", "handles at end", s.allocations);
    println!(
        "  {:<28} {} handles, {} bytes",
        "after dropping all", o.after_drop.allocations, o.after_drop.discardable_bytes
    );
    let mut failed = o.failures.clone();
    let corrupt: u64 = c::FAILURES.iter().map(|&i| o.counts[i]).sum();
    println!("  {:<28} {corrupt}", "corruption count");
    for i in c::FAILURES {
        if o.counts[i] != 0 {
            failed.push(format!("{}: {}", c::NAMES[i], o.counts[i]));
        }
    }
    let lazy = o.mode == "lazy";
    let minimums = [
        ("pins", o.counts[c::PINS], MIN_PINS),
        ("failed upgrades", o.counts[c::FAILED_UPGRADES] + o.counts[c::FAILED_UPGRADE_MUTS], MIN_FAILED_UPGRADES),
        ("discards (stats)", s.discarded_count, MIN_DISCARDS),
        ("discard() refused (pinned)", o.counts[c::DISCARDS_REFUSED], MIN_DISCARDS_REFUSED),
        ("strong bytes churned", o.counts[c::STRONG_BYTES], MIN_STRONG_BYTES),
        ("cross-thread frees", o.counts[c::CROSS_FREES], MIN_CROSS_FREES),
        ("offers (stats)", if lazy { s.offers } else { u64::MAX }, MIN_OFFERS),
        ("revivals (stats)", if lazy { s.revivals } else { u64::MAX }, MIN_REVIVALS),
    ];
    for (name, n, min) in minimums {
        if n < min {
            failed.push(format!("too few {name}: {n} < {min} (did anything race?)"));
        }
    }
    if s.discarded_count < o.counts[c::MANUAL_DISCARDS] {
        failed.push(format!(
            "stats count {} discards, but discard() won {} times",
            s.discarded_count,
            o.counts[c::MANUAL_DISCARDS]
        ));
    }
    failed
}

fn usage() -> ! {
    eprintln!("usage: stress <seconds> [--mode managed|lazy|both] [--threads N] [--seed S]");
    std::process::exit(2);
}

fn main() {
    let mut secs: Option<f64> = None;
    let mut mode = "both".to_string();
    let mut threads = 4usize;
    let mut seed = 0x5EED_D15C_A4DAu64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--mode" => mode = value(),
            "--threads" => threads = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            s if secs.is_none() => secs = Some(s.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    let secs = secs.unwrap_or(10.0);
    let valid_secs = secs.is_finite() && secs > 0.0 && secs < 1e9;
    if !valid_secs || threads == 0 {
        usage();
    }
    let modes: &[ReclaimMode] = match mode.as_str() {
        "managed" => &[ReclaimMode::Managed],
        "lazy" => &[ReclaimMode::Lazy],
        "both" => &[ReclaimMode::Managed, ReclaimMode::Lazy],
        _ => usage(),
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Relaxed);
        default_hook(info);
    }));
    let start = Instant::now();
    let per_mode = secs / modes.len() as f64;
    let outcomes: Vec<Outcome> = modes.iter().map(|&m| run_mode(m, per_mode, threads, seed)).collect();
    let mut failed = Vec::new();
    for o in &outcomes {
        failed.extend(summarize(o).into_iter().map(|f| format!("{}: {f}", o.mode)));
    }
    let alloc = DiscardAlloc::stats();
    println!(
        "== total {:.2?}, seed {seed}; allocator: {} KiB mapped, {} KiB in use, {} KiB retained",
        start.elapsed(),
        alloc.mapped >> 10,
        alloc.in_use >> 10,
        alloc.retained >> 10
    );
    if failed.is_empty() {
        println!("stress: PASS");
    } else {
        println!("stress: FAIL");
        for f in &failed {
            println!("  {f}");
        }
        std::process::exit(1);
    }
}

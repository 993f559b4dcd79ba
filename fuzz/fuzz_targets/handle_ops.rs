//! Differential fuzzing of `Discardable<[u8]>` handles on one `Manager`
//! against a naive model written here (plain `Vec<u8>`s and counters, none of
//! the crate's code).
//!
//! # What is driven
//!
//! An input picks a replacement policy and a list of [`Op`]s over
//! [`SLOTS`] handle slots. Each policy has one manager, started once per
//! process (a `static OnceLock`) with a limit of [`LIMIT`] bytes, far more
//! than an input can allocate, so the background thread never discards on its
//! own: the only discarders are this target's `Reclaim` (`Manager::reclaim`)
//! and `Discard` (`Discardable::discard`) ops, and the model therefore knows
//! exactly when something is discarded. Every handle is dropped at the end of
//! each input, and the next input asserts the manager it uses holds no live
//! handle and no byte, so inputs never see each other's handles (libFuzzer
//! runs them one at a time on one thread). Should the manager ever discard
//! for other reasons (host or cgroup memory pressure, a process limit), those
//! must be switched off in [`managers`], or the model loses track.
//!
//! # How guards are held
//!
//! A `Pinned<'_, [u8]>` borrows its handle, so a guard cannot sit in the same
//! structure as the handles it pins, and `write_at`, `copy_within`, `fill`,
//! `upgrade_mut`, replacing and dropping a handle all need `&mut` to it. So
//! the model keeps the guards as a *count* per slot (`Upgrade` adds one,
//! `DropGuard` removes one), and every op runs inside a scope that first
//! realises those counts as real guards, `pins` times `upgrade()` on each
//! slot, and drops them when the op is done:
//!
//! - an op that needs only `&` handles ([`with_shared`]) runs with every
//!   counted pin held, the target slot's included;
//! - an op that needs `&mut` to slot `i` ([`with_mut`]) first drops slot
//!   `i`'s guards (its count goes to 0 in the model too, as a real guard
//!   would have to be dropped before the `&mut` borrow), then splits the slot
//!   array around `i` and runs with every *other* counted pin held.
//!
//! Between two ops no crate code runs but these unpins and re-pins, and
//! nothing can discard there (only ops discard, see above), so this is
//! equivalent to holding each guard from `Upgrade` to `DropGuard`: when a
//! `Discard` or `Reclaim` runs, exactly the pins the model counts are live.
//! Re-pinning a slot the model says is pinned must always succeed (a pinned
//! handle is never discarded). The one visible difference is that each
//! re-pin records an access for the policy, which only changes which victim
//! the policy prefers, and no check here depends on that order. No `unsafe`,
//! no leaked storage.
//!
//! # What is checked
//!
//! - `upgrade()`/`upgrade_mut()` return `None` exactly when the model says
//!   discarded; a guard sees the model's bytes.
//! - `discard()` returns `false` exactly when the slot is pinned or already
//!   discarded.
//! - `reclaim(bytes)` never discards a pinned handle; it returns exactly the
//!   summed cost of the handles it took from alive to discarded; it frees
//!   nothing for `bytes == 0`; if it returns less than `bytes` then nothing
//!   unpinned is left alive; and it stops once `bytes` were reached (without
//!   the last victim it was still short).
//! - `read_at`, `write_at`, `copy_within`, `compare_at`, `find` and `fill`
//!   agree with the `Vec<u8>` model, including out-of-range and overflowing
//!   offsets: `OutOfBounds { start, end (saturated), len }` is reported
//!   before (and instead of) `Discarded`.
//! - After every op: `is_discarded()`, `len()` and a stable `cost() >= len`
//!   per slot, and the manager's `Stats` (live handles, discardable bytes,
//!   discarded count and bytes since the input began) match the model.
//! - At the end: every alive handle holds exactly the model's bytes, and once
//!   all are dropped the manager holds no handle and no byte.

#![no_main]

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use discardable::{AccessError, Discardable, Manager, Pinned, Policy, Stats};
use libfuzzer_sys::fuzz_target;

/// Handle slots per input.
const SLOTS: usize = 16;
/// Most guards the model counts per slot (more `Upgrade`s are checked, then
/// dropped at once).
const MAX_PINS: u32 = 8;
/// The managers' limit: far above anything an input allocates (16 slots of
/// at most 64 KiB), so the background thread never discards.
const LIMIT: usize = 1 << 40;
/// Interesting lengths: empty, around the small-slot classes, around a page,
/// and the largest length an input can ask for.
const BOUNDARY: [usize; 16] = [0, 1, 15, 16, 17, 64, 65, 128, 129, 2047, 2048, 2049, 4095, 4096, 4097, 65536];

type Handle = Discardable<[u8]>;

fn managers() -> &'static [Manager; 4] {
    static MANAGERS: OnceLock<[Manager; 4]> = OnceLock::new();
    MANAGERS.get_or_init(|| {
        [Policy::Lru, Policy::Clock, Policy::Fifo, Policy::S3Fifo]
            .map(|p| Manager::builder().policy(p).limit(LIMIT).start().expect("manager starts"))
    })
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PolicyPick {
    Lru,
    Clock,
    Fifo,
    S3Fifo,
}

/// A length: small, one of [`BOUNDARY`], or anything up to 64 KiB.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Small(u8),
    Boundary(u8),
    Any(u16),
}

impl Len {
    fn get(self) -> usize {
        match self {
            Len::Small(n) => usize::from(n),
            Len::Boundary(i) => BOUNDARY[usize::from(i) % BOUNDARY.len()],
            Len::Any(n) => usize::from(n),
        }
    }
}

/// An offset relative to the target slot's length, in and out of bounds.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pos {
    At(u16),
    FromEnd(u8),
    PastEnd(u8),
    NearMax(u8),
}

impl Pos {
    fn get(self, len: usize) -> usize {
        match self {
            Pos::At(x) => usize::from(x),
            Pos::FromEnd(x) => len.saturating_sub(usize::from(x)),
            Pos::PastEnd(x) => len.saturating_add(usize::from(x)),
            Pos::NearMax(x) => usize::MAX - usize::from(x),
        }
    }
}

/// Bytes to write or compare.
#[derive(Arbitrary, Debug)]
enum Data {
    Bytes(Vec<u8>),
    Pattern {
        len: Len,
        seed: u8,
    },
    /// A copy of the slot's (model) bytes from `from`, with one byte
    /// optionally changed, so `compare_at` sees equal and near-equal data.
    Copy {
        from: Pos,
        len: Len,
        tweak: Option<(u16, u8)>,
    },
}

impl Data {
    fn resolve(&self, model: &[u8]) -> Vec<u8> {
        match self {
            Data::Bytes(v) => v.clone(),
            Data::Pattern { len, seed } => pattern(len.get(), *seed),
            Data::Copy { from, len, tweak } => {
                let start = from.get(model.len()).min(model.len());
                let end = start + len.get().min(model.len() - start);
                let mut v = model[start..end].to_vec();
                if let (Some((at, x)), false) = (tweak, v.is_empty()) {
                    let i = usize::from(*at) % v.len();
                    v[i] ^= x;
                }
                v
            }
        }
    }
}

/// How much to ask `reclaim` for.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Amount {
    Zero,
    Bytes(u16),
    Pages(u8),
    CostOf(u8),
    All,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Replace the slot by `from_slice_in` of a pattern of `len` bytes.
    New {
        slot: u8,
        len: Len,
        byte: u8,
    },
    /// Replace the slot by `try_zeroed_in(len)`.
    NewZeroed {
        slot: u8,
        len: Len,
    },
    DropHandle {
        slot: u8,
    },
    /// `upgrade()`; the guard is counted by the model until `DropGuard`.
    Upgrade {
        slot: u8,
    },
    DropGuard {
        slot: u8,
    },
    /// `upgrade_mut()` and write one byte through it.
    UpgradeMut {
        slot: u8,
        at: Pos,
        byte: u8,
    },
    /// `upgrade()` and read one byte through the guard.
    ReadGuard {
        slot: u8,
        at: Pos,
    },
    Discard {
        slot: u8,
    },
    Reclaim {
        amount: Amount,
    },
    ReadAt {
        slot: u8,
        offset: Pos,
        n: Len,
    },
    WriteAt {
        slot: u8,
        offset: Pos,
        data: Data,
    },
    CopyWithin {
        slot: u8,
        start: Pos,
        end: Pos,
        dest: Pos,
    },
    CompareAt {
        slot: u8,
        offset: Pos,
        data: Data,
    },
    Find {
        slot: u8,
        byte: u8,
        start: Pos,
        end: Pos,
    },
    Fill {
        slot: u8,
        start: Pos,
        end: Pos,
        byte: u8,
    },
    /// Compare every alive slot's bytes with the model.
    CheckAll,
}

#[derive(Arbitrary, Debug)]
struct Input {
    policy: PolicyPick,
    ops: Vec<Op>,
}

/// The model of one slot.
#[derive(Debug)]
struct Model {
    /// The bytes the handle must hold while not discarded.
    bytes: Vec<u8>,
    discarded: bool,
    /// Guards held (realised for the duration of each op, see the module
    /// docs).
    pins: u32,
    /// `cost()` seen at creation; it must never change.
    cost: usize,
}

/// The model's totals since the input began.
#[derive(Debug, Default)]
struct Book {
    discarded_count: u64,
    discarded_bytes: u64,
}

impl Book {
    fn note_discard(&mut self, cost: usize) {
        self.discarded_count += 1;
        self.discarded_bytes += cost as u64;
    }
}

/// Creation content: varies with the offset, so misplaced reads show.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8).wrapping_add((i >> 8) as u8)).collect()
}

fn slot_index(slot: u8) -> usize {
    usize::from(slot) % SLOTS
}

// ---- the naive model of the byte-offset API ------------------------------

/// `offset..offset + n` within `len`, or the error the docs promise
/// (computed in 128 bits, saturating `end` at `usize::MAX`).
fn model_span(offset: usize, n: usize, len: usize) -> Result<Range<usize>, AccessError> {
    let end = offset as u128 + n as u128;
    if end <= len as u128 {
        Ok(offset..end as usize)
    } else {
        Err(AccessError::OutOfBounds { start: offset, end: end.min(usize::MAX as u128) as usize, len })
    }
}

/// `start..end` if ordered and within `len`, or the error the docs promise.
fn model_range(start: usize, end: usize, len: usize) -> Result<Range<usize>, AccessError> {
    if start > end || end > len {
        Err(AccessError::OutOfBounds { start, end, len })
    } else {
        Ok(start..end)
    }
}

fn naive_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] < b[i] {
            return Ordering::Less;
        }
        if a[i] > b[i] {
            return Ordering::Greater;
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

fn naive_find(bytes: &[u8], byte: u8, r: Range<usize>) -> Option<usize> {
    let mut i = r.start;
    while i < r.end {
        if bytes[i] == byte {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn naive_memmove(bytes: &mut [u8], src: Range<usize>, dest: usize) {
    let tmp: Vec<u8> = src.clone().map(|i| bytes[i]).collect();
    for (k, b) in tmp.into_iter().enumerate() {
        bytes[dest + k] = b;
    }
}

// ---- realising the counted guards ------------------------------------------

/// Pins every slot of `handles` as often as its model counts, checking each
/// guard against the model, and appends the guards to `out`.
fn pin_counted<'a>(handles: &'a [Option<Handle>], models: &[Option<Model>], out: &mut Vec<Pinned<'a, [u8]>>) {
    for (k, (h, m)) in handles.iter().zip(models).enumerate() {
        let (Some(h), Some(m)) = (h, m) else { continue };
        for _ in 0..m.pins {
            let g = h.upgrade().unwrap_or_else(|| panic!("slot +{k}: pinned in the model, but upgrade() is None"));
            assert_eq!(g.len(), m.bytes.len(), "guard length");
            assert_eq!(g.first(), m.bytes.first(), "guard first byte");
            assert_eq!(g.last(), m.bytes.last(), "guard last byte");
            out.push(g);
        }
    }
}

/// Runs `f` on shared handles with every counted guard held.
fn with_shared<R>(handles: &[Option<Handle>], models: &[Option<Model>], f: impl FnOnce(&[Option<Handle>]) -> R) -> R {
    let mut guards = Vec::new();
    pin_counted(handles, models, &mut guards);
    let r = f(handles);
    drop(guards);
    r
}

/// Runs `f` on slot `i` mutably with every *other* counted guard held; slot
/// `i`'s guards are dropped first (model included).
fn with_mut<R>(
    handles: &mut [Option<Handle>],
    models: &mut [Option<Model>],
    i: usize,
    f: impl FnOnce(&mut Option<Handle>, &mut Option<Model>) -> R,
) -> R {
    if let Some(m) = models[i].as_mut() {
        m.pins = 0;
    }
    let (before, rest) = handles.split_at_mut(i);
    let (target, after) = rest.split_first_mut().expect("slot in range");
    let mut guards = Vec::new();
    pin_counted(before, &models[..i], &mut guards);
    pin_counted(after, &models[i + 1..], &mut guards);
    let r = f(target, &mut models[i]);
    drop(guards);
    r
}

// ---- checks after every op -------------------------------------------------

fn check_state(handles: &[Option<Handle>], models: &[Option<Model>], manager: &Manager, base: &Stats, book: &Book) {
    let mut live = 0;
    let mut bytes = 0;
    for (i, (h, m)) in handles.iter().zip(models).enumerate() {
        match (h, m) {
            (None, None) => {}
            (Some(h), Some(m)) => {
                live += 1;
                assert_eq!(h.is_discarded(), m.discarded, "slot {i}: is_discarded() vs model {m:?}");
                assert_eq!(h.len(), m.bytes.len(), "slot {i}: len()");
                assert_eq!(h.cost(), m.cost, "slot {i}: cost() changed");
                if !m.discarded {
                    bytes += m.cost;
                }
            }
            _ => unreachable!("handles and models out of step"),
        }
    }
    let s = manager.stats();
    assert_eq!(s.allocations, live, "stats.allocations (live handles)");
    assert_eq!(s.discardable_bytes, bytes, "stats.discardable_bytes (cost of alive, undiscarded handles)");
    assert_eq!(s.discarded_count - base.discarded_count, book.discarded_count, "stats.discarded_count");
    assert_eq!(s.discarded_bytes - base.discarded_bytes, book.discarded_bytes, "stats.discarded_bytes");
    assert_eq!(s.limit, LIMIT);
}

fn check_contents(handles: &[Option<Handle>], models: &[Option<Model>]) {
    for (i, (h, m)) in handles.iter().zip(models).enumerate() {
        let (Some(h), Some(m)) = (h, m) else { continue };
        match h.upgrade() {
            None => assert!(m.discarded, "slot {i}: upgrade() None but the model says alive"),
            Some(g) => {
                assert!(!m.discarded, "slot {i}: upgrade() Some after discard");
                assert!(*g == *m.bytes, "slot {i}: bytes differ from the model");
            }
        }
    }
}

fn new_model(h: &Handle, bytes: Vec<u8>) -> Model {
    let cost = h.cost();
    assert!(cost >= bytes.len(), "cost {cost} below length {}", bytes.len());
    assert_eq!(h.len(), bytes.len());
    assert!(!h.is_discarded(), "a fresh handle is alive");
    Model { bytes, discarded: false, pins: 0, cost }
}

// ---- one op ------------------------------------------------------------------

fn run_op(op: &Op, handles: &mut [Option<Handle>], models: &mut [Option<Model>], manager: &Manager, book: &mut Book) {
    match *op {
        Op::New { slot, len, byte } => {
            let data = pattern(len.get(), byte);
            with_mut(handles, models, slot_index(slot), |h, m| {
                *h = None; // drop the old handle first
                *m = None;
                let d = Discardable::from_slice_in(&data, manager);
                *m = Some(new_model(&d, data));
                *h = Some(d);
            });
        }
        Op::NewZeroed { slot, len } => {
            let len = len.get();
            with_mut(handles, models, slot_index(slot), |h, m| {
                *h = None;
                *m = None;
                let d = Discardable::try_zeroed_in(len, manager).expect("zeroed_in");
                *m = Some(new_model(&d, vec![0; len]));
                *h = Some(d);
            });
        }
        Op::DropHandle { slot } => {
            with_mut(handles, models, slot_index(slot), |h, m| {
                *h = None;
                *m = None;
            });
        }
        Op::Upgrade { slot } => {
            let i = slot_index(slot);
            let Some(discarded) = models[i].as_ref().map(|m| m.discarded) else { return };
            let got = with_shared(handles, models, |hs| {
                let g = hs[i].as_ref().expect("slot").upgrade();
                if let Some(g) = &g {
                    let m = models[i].as_ref().expect("model");
                    assert!(**g == *m.bytes, "slot {i}: upgraded bytes differ from the model");
                }
                g.is_some()
            });
            assert_eq!(got, !discarded, "slot {i}: upgrade() is None exactly when discarded");
            let m = models[i].as_mut().expect("model");
            if got && m.pins < MAX_PINS {
                m.pins += 1;
            }
        }
        Op::DropGuard { slot } => {
            if let Some(m) = models[slot_index(slot)].as_mut() {
                m.pins = m.pins.saturating_sub(1);
            }
        }
        Op::UpgradeMut { slot, at, byte } => {
            let i = slot_index(slot);
            with_mut(handles, models, i, |h, m| {
                let (Some(h), Some(m)) = (h.as_mut(), m.as_mut()) else { return };
                let g = h.upgrade_mut();
                assert_eq!(g.is_none(), m.discarded, "slot {i}: upgrade_mut() is None exactly when discarded");
                if let Some(mut g) = g {
                    assert_eq!(g.len(), m.bytes.len());
                    if !g.is_empty() {
                        let k = at.get(g.len()) % g.len();
                        assert_eq!(g[k], m.bytes[k], "slot {i}: byte {k} through upgrade_mut");
                        g[k] = byte;
                        m.bytes[k] = byte;
                    }
                }
            });
        }
        Op::ReadGuard { slot, at } => {
            let i = slot_index(slot);
            let Some(m) = models[i].as_ref() else { return };
            with_shared(handles, models, |hs| {
                let g = hs[i].as_ref().expect("slot").upgrade();
                assert_eq!(g.is_none(), m.discarded, "slot {i}: upgrade() is None exactly when discarded");
                if let Some(g) = g {
                    assert_eq!(g.len(), m.bytes.len());
                    if !g.is_empty() {
                        let k = at.get(g.len()) % g.len();
                        assert_eq!(g[k], m.bytes[k], "slot {i}: byte {k} through a guard");
                    }
                }
            });
        }
        Op::Discard { slot } => {
            let i = slot_index(slot);
            let Some(m) = models[i].as_ref() else { return };
            let expect = !m.discarded && m.pins == 0;
            let got = with_shared(handles, models, |hs| hs[i].as_ref().expect("slot").discard());
            assert_eq!(got, expect, "slot {i}: discard() with model {m:?}");
            if got {
                let m = models[i].as_mut().expect("model");
                m.discarded = true;
                book.note_discard(m.cost);
            }
        }
        Op::Reclaim { amount } => {
            let target = match amount {
                Amount::Zero => 0,
                Amount::Bytes(n) => usize::from(n),
                Amount::Pages(n) => usize::from(n) * 4096,
                Amount::CostOf(s) => models[slot_index(s)].as_ref().map_or(1, |m| m.cost),
                Amount::All => usize::MAX,
            };
            let freed = with_shared(handles, models, |_| manager.reclaim(target));
            let mut newly = 0usize;
            let mut largest = 0usize;
            let mut unpinned_left = false;
            for (i, (h, m)) in handles.iter().zip(models.iter_mut()).enumerate() {
                let (Some(h), Some(m)) = (h, m) else { continue };
                let now = h.is_discarded();
                if m.discarded {
                    assert!(now, "slot {i}: un-discarded by reclaim");
                    continue;
                }
                if now {
                    assert_eq!(m.pins, 0, "slot {i}: reclaim discarded a pinned handle ({} pins)", m.pins);
                    m.discarded = true;
                    newly += m.cost;
                    largest = largest.max(m.cost);
                    book.note_discard(m.cost);
                } else if m.pins == 0 {
                    unpinned_left = true;
                }
            }
            assert_eq!(freed, newly, "reclaim({target}) returned {freed}, but the handles it discarded cost {newly}");
            if target == 0 {
                assert_eq!(freed, 0, "reclaim(0) discarded something");
            }
            if freed < target {
                assert!(!unpinned_left, "reclaim({target}) freed only {freed} but left an unpinned handle alive");
            }
            if newly > 0 {
                assert!(
                    freed - largest < target,
                    "reclaim({target}) freed {freed}: it went on after reaching the target (largest victim {largest})"
                );
            }
        }
        Op::ReadAt { slot, offset, n } => {
            let i = slot_index(slot);
            let Some(m) = models[i].as_ref() else { return };
            let len = m.bytes.len();
            let offset = offset.get(len);
            let mut buf = vec![0xA5u8; n.get()];
            let expect = model_span(offset, buf.len(), len).and_then(|r| {
                if m.discarded {
                    Err(AccessError::Discarded)
                } else {
                    Ok(m.bytes[r].to_vec())
                }
            });
            let got = with_shared(handles, models, |hs| hs[i].as_ref().expect("slot").read_at(offset, &mut buf));
            match (got, expect) {
                (Ok(()), Ok(want)) => assert!(buf == want, "slot {i}: read_at({offset}, {}) bytes", buf.len()),
                (got, want) => assert_eq!(got, want.map(drop), "slot {i}: read_at({offset}, {})", buf.len()),
            }
        }
        Op::WriteAt { slot, offset, ref data } => {
            let i = slot_index(slot);
            let Some(m) = models[i].as_ref() else { return };
            let data = data.resolve(&m.bytes);
            let offset = offset.get(m.bytes.len());
            with_mut(handles, models, i, |h, m| {
                let (h, m) = (h.as_mut().expect("slot"), m.as_mut().expect("model"));
                let expect = model_span(offset, data.len(), m.bytes.len()).and_then(|r| {
                    if m.discarded {
                        Err(AccessError::Discarded)
                    } else {
                        Ok(r)
                    }
                });
                let got = h.write_at(offset, &data);
                assert_eq!(got, expect.clone().map(drop), "slot {i}: write_at({offset}, {} bytes)", data.len());
                if let Ok(r) = expect {
                    for (k, b) in r.zip(&data) {
                        m.bytes[k] = *b;
                    }
                }
            });
        }
        Op::CopyWithin { slot, start, end, dest } => {
            let i = slot_index(slot);
            with_mut(handles, models, i, |h, m| {
                let (Some(h), Some(m)) = (h.as_mut(), m.as_mut()) else { return };
                let len = m.bytes.len();
                let (start, end, dest) = (start.get(len), end.get(len), dest.get(len));
                let expect = model_range(start, end, len)
                    .and_then(|src| model_span(dest, src.len(), len).map(|_| src))
                    .and_then(|src| if m.discarded { Err(AccessError::Discarded) } else { Ok(src) });
                let got = h.copy_within(start..end, dest);
                assert_eq!(got, expect.clone().map(drop), "slot {i}: copy_within({start}..{end}, {dest}) of {len}");
                if let Ok(src) = expect {
                    naive_memmove(&mut m.bytes, src, dest);
                }
            });
        }
        Op::CompareAt { slot, offset, ref data } => {
            let i = slot_index(slot);
            let Some(m) = models[i].as_ref() else { return };
            let data = data.resolve(&m.bytes);
            let len = m.bytes.len();
            let offset = offset.get(len);
            let expect = model_span(offset, data.len(), len).and_then(|r| {
                if m.discarded {
                    Err(AccessError::Discarded)
                } else {
                    Ok(naive_cmp(&m.bytes[r], &data))
                }
            });
            let got = with_shared(handles, models, |hs| hs[i].as_ref().expect("slot").compare_at(offset, &data));
            assert_eq!(got, expect, "slot {i}: compare_at({offset}, {} bytes)", data.len());
        }
        Op::Find { slot, byte, start, end } => {
            let i = slot_index(slot);
            let Some(m) = models[i].as_ref() else { return };
            let len = m.bytes.len();
            let (start, end) = (start.get(len), end.get(len));
            let expect = model_range(start, end, len).and_then(|r| {
                if m.discarded {
                    Err(AccessError::Discarded)
                } else {
                    Ok(naive_find(&m.bytes, byte, r))
                }
            });
            let got = with_shared(handles, models, |hs| hs[i].as_ref().expect("slot").find(byte, start..end));
            assert_eq!(got, expect, "slot {i}: find({byte}, {start}..{end}) of {len}");
        }
        Op::Fill { slot, start, end, byte } => {
            let i = slot_index(slot);
            with_mut(handles, models, i, |h, m| {
                let (Some(h), Some(m)) = (h.as_mut(), m.as_mut()) else { return };
                let len = m.bytes.len();
                let (start, end) = (start.get(len), end.get(len));
                let expect = model_range(start, end, len).and_then(|r| {
                    if m.discarded {
                        Err(AccessError::Discarded)
                    } else {
                        Ok(r)
                    }
                });
                let got = h.fill(start..end, byte);
                assert_eq!(got, expect.clone().map(drop), "slot {i}: fill({start}..{end}, {byte}) of {len}");
                if let Ok(r) = expect {
                    for k in r {
                        m.bytes[k] = byte;
                    }
                }
            });
        }
        Op::CheckAll => with_shared(handles, models, |hs| check_contents(hs, models)),
    }
}

fuzz_target!(|input: Input| {
    let manager = &managers()[input.policy as usize];
    let base = manager.stats();
    assert_eq!(base.allocations, 0, "a previous input left a live handle");
    assert_eq!(base.discardable_bytes, 0, "a previous input left discardable bytes");
    let mut handles: Vec<Option<Handle>> = (0..SLOTS).map(|_| None).collect();
    let mut models: Vec<Option<Model>> = (0..SLOTS).map(|_| None).collect();
    let mut book = Book::default();
    for op in &input.ops {
        run_op(op, &mut handles, &mut models, manager, &mut book);
        check_state(&handles, &models, manager, &base, &book);
    }
    check_contents(&handles, &models);
    drop(handles);
    let end = manager.stats();
    assert_eq!(end.allocations, 0, "handles dropped, yet stats.allocations = {}", end.allocations);
    assert_eq!(end.discardable_bytes, 0, "handles dropped, yet stats.discardable_bytes = {}", end.discardable_bytes);
});

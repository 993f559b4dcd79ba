//! The validated reader: what a registry's bytes say about the group, or
//! a typed [`Fault`] when they cannot be trusted.
//!
//! Owns the checks, never the bytes: every header word and every field of
//! every live slot is checked against the layout and against what a live
//! member can write (a weight in `1..=u32::MAX`, byte counts below
//! [`MAX_BYTES`], a pid the kernel can hand out). Anything else is a fault
//! of the whole registry (truncated, corrupt, another version, a hostile
//! writer), and the member that read it acts alone for that decision.
//! Never panics and never loops unboundedly, whatever the bytes.
//!
//! Threads: any; it reads the mapping through atomics only.

use core::fmt;

use super::slot::{Layout, HEADER_WORDS, LEASE_MS, MAGIC, SLOTS, SLOT_WORDS, VERSION};
use crate::os::OsError;
use crate::sync::Ordering;

/// The most bytes a slot may claim for any figure (1 PiB).
pub(crate) const MAX_BYTES: u64 = 1 << 50;
/// The kernel's largest pid (`PID_MAX_LIMIT` on 64-bit Linux).
const PID_MAX: u64 = 1 << 22;
/// Reads of a slot that keeps changing before it is skipped.
const READ_TRIES: usize = 4;

/// Why a registry cannot be used (the member acts alone meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The file is shorter than the layout (`size` bytes).
    Truncated { size: u64 },
    /// The first word is not the registry's magic.
    Magic,
    /// Another layout version (or a creator that never finished: 0).
    Version(u64),
    /// The header's geometry words are not this layout's.
    Geometry,
    /// A live slot holds what no member writes.
    Slot { index: usize, what: &'static str },
    /// Every slot is held by a live member.
    Full,
    /// Our slot was taken (we stalled past the lease); we claim another.
    Lost,
    /// A system call on the registry failed.
    Os(OsError),
    /// The path exists but is no regular file (a link, a directory).
    NotRegular,
    /// There is no registry file (a reader never creates one).
    Missing,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Truncated { size } => write!(f, "registry truncated to {size} bytes"),
            Fault::Magic => f.write_str("registry has the wrong magic"),
            Fault::Version(v) => write!(f, "registry version {v}, expected {VERSION}"),
            Fault::Geometry => f.write_str("registry header has another geometry"),
            Fault::Slot { index, what } => write!(f, "registry slot {index}: {what}"),
            Fault::Full => f.write_str("registry full"),
            Fault::Lost => f.write_str("our registry slot was taken"),
            Fault::Os(e) => write!(f, "registry: {e}"),
            Fault::NotRegular => f.write_str("registry path is not a regular file"),
            Fault::Missing => f.write_str("no registry file: no member has joined the group"),
        }
    }
}

/// One live member, as read and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberView {
    pub(crate) slot: usize,
    pub(crate) tag: u32,
    pub(crate) pid: u32,
    pub(crate) weight: u32,
    pub(crate) held: u64,
    /// At most `held`.
    pub(crate) pinned: u64,
    /// At least `held`.
    pub(crate) demand: u64,
    pub(crate) share: u64,
    pub(crate) reclaims: u64,
    /// Milliseconds since its heartbeat.
    pub(crate) age_ms: u64,
}

/// Checks the header words.
pub(crate) fn check_header(words: &[u64; HEADER_WORDS]) -> Result<(), Fault> {
    if words[0] != MAGIC {
        return Err(Fault::Magic);
    }
    if words[1] != VERSION {
        return Err(Fault::Version(words[1]));
    }
    if words[2] != SLOTS as u64 || words[3] != SLOT_WORDS as u64 || words[4] != LEASE_MS || words[5..] != [0; 3] {
        return Err(Fault::Geometry);
    }
    Ok(())
}

/// The header's words, read once.
pub(crate) fn header_words(layout: &Layout) -> [u64; HEADER_WORDS] {
    // Acquire: the version word pairs with the creator's Release store.
    core::array::from_fn(|i| layout.header.words[i].load(Ordering::Acquire))
}

/// Every live member of `layout` at `now` (ms on `CLOCK_MONOTONIC`), or
/// why the registry cannot be trusted. Slots being written, changing under
/// every read, free or expired are left out.
pub(crate) fn members(layout: &Layout, now: u64) -> Result<Vec<MemberView>, Fault> {
    check_header(&header_words(layout))?;
    let mut out = Vec::new();
    for (index, slot) in layout.slots.iter().enumerate() {
        let Some((claim, f)) = (0..READ_TRIES).find_map(|_| slot.read()) else { continue };
        if claim.expired(now) {
            continue;
        }
        let bad = |what| Err(Fault::Slot { index, what });
        if f.weight == 0 || f.weight > u64::from(u32::MAX) {
            return bad("weight out of range");
        }
        if f.pid == 0 || f.pid > PID_MAX {
            return bad("pid out of range");
        }
        if [f.held, f.pinned, f.demand, f.share].iter().any(|&b| b > MAX_BYTES) {
            return bad("byte count out of range");
        }
        out.push(MemberView {
            slot: index,
            tag: claim.tag,
            pid: f.pid as u32,
            weight: f.weight as u32,
            held: f.held,
            pinned: f.pinned.min(f.held),
            demand: f.demand.max(f.held),
            share: f.share,
            reclaims: f.reclaims,
            age_ms: now.saturating_sub(claim.heartbeat),
        });
    }
    Ok(out)
}

/// [`members`] of a registry given as raw bytes (the fuzz target's entry):
/// too short is [`Fault::Truncated`]; bytes past the layout are ignored.
#[cfg(any(test, fuzzing))]
pub(crate) fn members_of_bytes(bytes: &[u8], now: u64) -> Result<Vec<MemberView>, Fault> {
    use super::slot::BYTES;
    if bytes.len() < BYTES {
        return Err(Fault::Truncated { size: bytes.len() as u64 });
    }
    let words: Vec<crate::sync::AtomicU64> = bytes[..BYTES]
        .chunks_exact(8)
        .map(|c| crate::sync::AtomicU64::new(u64::from_ne_bytes(c.try_into().expect("8 bytes"))))
        .collect();
    // SAFETY: `Layout` is `repr(C)` of `AtomicU64`s only (size BYTES, align
    // 8, checked at compile time), and `words` is BYTES / 8 initialised,
    // 8-aligned `AtomicU64`s that live and are not moved until we return.
    let layout = unsafe { &*words.as_ptr().cast::<Layout>() };
    members(layout, now)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::slot::{Figures, Slot, BYTES};
    use super::*;

    fn fresh() -> Vec<u8> {
        let mut b = vec![0u8; BYTES];
        let header = [MAGIC, VERSION, SLOTS as u64, SLOT_WORDS as u64, LEASE_MS, 0, 0, 0];
        for (i, w) in header.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
        }
        b
    }

    fn put_slot(b: &mut [u8], index: usize, tag: u32, now: u64, f: &Figures) {
        let slot = Slot::new();
        let mut hold = slot.try_claim(tag, now).unwrap();
        assert!(slot.publish(&mut hold, f, now));
        let start = (HEADER_WORDS + index * SLOT_WORDS) * 8;
        b[start..start + 8].copy_from_slice(&slot.word().to_ne_bytes());
        let words = [f.pid, f.weight, f.held, f.pinned, f.demand, f.share, f.reclaims];
        for (i, w) in words.iter().enumerate() {
            b[start + 8 + i * 8..start + 16 + i * 8].copy_from_slice(&w.to_ne_bytes());
        }
    }

    fn live(pid: u64, weight: u64, held: u64) -> Figures {
        Figures { pid, weight, held, pinned: 0, demand: held, share: 0, reclaims: 0 }
    }

    #[test]
    fn reads_live_members_and_skips_expired_ones() {
        let mut b = fresh();
        put_slot(&mut b, 0, 5, 10_000, &live(100, 1, 300));
        put_slot(&mut b, 3, 6, 10_000 - LEASE_MS - 1, &live(101, 2, 300));
        put_slot(&mut b, 9, 7, 9_000, &Figures { pinned: 900, demand: 1, ..live(102, 2, 200) });
        let m = members_of_bytes(&b, 10_000).unwrap();
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!((m[0].slot, m[0].pid, m[0].weight, m[0].held, m[0].age_ms), (0, 100, 1, 300, 0));
        assert_eq!((m[1].slot, m[1].pinned, m[1].demand, m[1].age_ms), (9, 200, 200, 1000), "clamped");
    }

    #[test]
    fn bad_headers_are_typed_faults() {
        let b = fresh();
        assert_eq!(members_of_bytes(&b[..100], 0), Err(Fault::Truncated { size: 100 }));
        let mut m = b.clone();
        m[0] ^= 1;
        assert_eq!(members_of_bytes(&m, 0), Err(Fault::Magic));
        let mut v = b.clone();
        v[8..16].copy_from_slice(&2u64.to_ne_bytes());
        assert_eq!(members_of_bytes(&v, 0), Err(Fault::Version(2)));
        let mut z = b.clone();
        z[8..16].copy_from_slice(&0u64.to_ne_bytes());
        assert_eq!(members_of_bytes(&z, 0), Err(Fault::Version(0)), "never initialised");
        let mut g = b.clone();
        g[16] = 63;
        assert_eq!(members_of_bytes(&g, 0), Err(Fault::Geometry));
    }

    #[test]
    fn hostile_slots_are_faults() {
        for (f, what) in [
            (live(100, 0, 1), "weight out of range"),
            (live(100, 1 << 32, 1), "weight out of range"),
            (live(0, 1, 1), "pid out of range"),
            (live(100, 1, MAX_BYTES + 1), "byte count out of range"),
        ] {
            let mut b = fresh();
            put_slot(&mut b, 4, 5, 1000, &f);
            assert_eq!(members_of_bytes(&b, 1000), Err(Fault::Slot { index: 4, what }), "{f:?}");
        }
    }

    #[test]
    fn a_slot_mid_write_is_skipped_not_corrupt() {
        let mut b = fresh();
        let slot = Slot::new();
        slot.try_claim(5, 1000).unwrap(); // INIT, garbage fields
        let start = HEADER_WORDS * 8;
        b[start..start + 8].copy_from_slice(&slot.word().to_ne_bytes());
        assert_eq!(members_of_bytes(&b, 1000), Ok(vec![]));
    }
}

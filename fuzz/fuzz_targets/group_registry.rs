//! Arbitrary bytes as a group registry (src/group/view.rs): the validated
//! reader must return members or a typed fault, never panic or loop, and
//! what it returns must be what a member can have written; the fair share
//! over whatever it returned must keep its promises.
//!
//! # Input
//!
//! Byte 0 chooses the shape: bit 0 writes a valid header over the first 64
//! bytes (so the slots behind it get fuzzed, not just the magic check),
//! bit 1 pads the input with zeros to the registry's size (else a short
//! input is a truncated file). Bytes 1..9 are the clock (`now`, ms), bytes
//! 9..17 the bytes to shed; the rest is the registry.
//!
//! # What is checked
//!
//! For every member returned: weight at least 1, `pinned <= held <=
//! demand`, slots distinct and in order. Then, over those members, the
//! shares lie between floor and demand and add up to what may be kept
//! (clamped between the floors and the demands), and the give-backs never
//! take a member below its share and add up to at least the shed (or all
//! the excess, if less).
#![no_main]

use discardable::__fuzz::{group_give_back, group_header, group_members_of_bytes, group_shares, GROUP_REGISTRY_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let shape = data[0];
    let now = u64::from_le_bytes(data[1..9].try_into().unwrap()) >> 20;
    let shed = u64::from_le_bytes(data[9..17].try_into().unwrap()) >> 8;
    let mut bytes = data[17..].to_vec();
    if shape & 2 != 0 && bytes.len() < GROUP_REGISTRY_BYTES {
        bytes.resize(GROUP_REGISTRY_BYTES, 0);
    }
    if shape & 1 != 0 && bytes.len() >= 64 {
        bytes[..64].copy_from_slice(&group_header());
    }
    let Ok(members) = group_members_of_bytes(&bytes, now) else { return };
    for w in members.windows(2) {
        assert!(w[0].slot < w[1].slot, "slots out of order: {members:?}");
    }
    for m in &members {
        assert!(m.weight >= 1 && m.pinned <= m.held && m.held <= m.demand, "{m:?}");
    }
    let held: Vec<u64> = members.iter().map(|m| m.held).collect();
    let total: u64 = held.iter().sum();
    let keep = total.saturating_sub(shed);
    let rows: Vec<(u64, u64, u64)> = members.iter().map(|m| (u64::from(m.weight), m.demand, m.pinned)).collect();
    let share = group_shares(keep, &rows);
    let floors: u64 = rows.iter().map(|r| r.2).sum();
    let demands: u64 = rows.iter().map(|r| r.1).sum();
    assert_eq!(share.iter().sum::<u64>(), keep.clamp(floors, demands.max(floors)), "{rows:?} keep {keep}");
    for (s, r) in share.iter().zip(&rows) {
        assert!(r.2 <= *s && *s <= r.1, "share {s} outside {r:?}");
    }
    let give = group_give_back(shed, &held, &share);
    let excess: u64 = held.iter().zip(&share).map(|(h, s)| h.saturating_sub(*s)).sum();
    assert!(give.iter().sum::<u64>() >= shed.min(excess));
    for ((g, h), s) in give.iter().zip(&held).zip(&share) {
        assert!(*g <= h.saturating_sub(*s), "gave {g} of {h} with share {s}");
    }
});

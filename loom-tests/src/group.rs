//! Models of the group registry's slot protocol (src/group/slot.rs
//! INV-1..3) on the shipped slot code in loom's atomics: an owner
//! publishing while a reader reads (the seqlock: a read never mixes two
//! publications), and a taker racing the owner for an expired slot (one
//! wins, the loser learns it and writes nothing, readers see only the
//! winner's fields under the winner's tag).

use discardable::__loom::GroupSlot;
use loom::sync::Arc;

use crate::harness;

const OWNER: u32 = 5;
const TAKER: u32 = 9;

/// Checks that an accepted read holds one publication of its tag's holder.
fn check_read(read: Option<(u32, u64, [u64; 7])>, allowed: &[(u32, &[u64])]) {
    let Some((tag, _, fields)) = read else { return };
    assert!(fields.iter().all(|&f| f == fields[0]), "a reader accepted fields from two publications: {fields:?}");
    let ok = allowed.iter().any(|(t, values)| *t == tag && values.contains(&fields[0]));
    assert!(ok, "a reader saw value {} under tag {tag}, which that holder never published", fields[0]);
}

/// An owner publishes while a reader reads. (Seven fields a publication:
/// one publication against one read at preemption bound 2 is what loom
/// explores in seconds; more grows past minutes.)
pub fn publish_while_reading() {
    harness::check("group::publish_while_reading", 2, || {
        let slot = Arc::new(GroupSlot::default());
        let mut hold = slot.try_claim(OWNER, 0).expect("a free slot");
        assert!(slot.publish(&mut hold, 1, 10));
        let owner = harness::spawn(&slot, move |slot| {
            let mut hold = hold;
            assert!(slot.publish(&mut hold, 2, 20), "nobody else may take a fresh slot");
        });
        let reader = harness::spawn(&slot, |slot| check_read(slot.read(), &[(OWNER, &[1, 2])]));
        owner.join().unwrap();
        reader.join().unwrap();
        check_read(slot.read(), &[(OWNER, &[2])]);
    });
}

/// The owner's heartbeat expired; it publishes again just as a taker
/// claims the slot (readers are `publish_while_reading`'s; the final read
/// checks whose fields stayed).
pub fn taker_races_the_owner() {
    harness::check("group::taker_races_the_owner", 2, || {
        let slot = Arc::new(GroupSlot::default());
        let mut hold = slot.try_claim(OWNER, 0).expect("a free slot");
        assert!(slot.publish(&mut hold, 1, 0));
        let late = GroupSlot::LEASE_MS + 1000;
        let owner = harness::spawn(&slot, move |slot| {
            let mut hold = hold;
            slot.publish(&mut hold, 2, late)
        });
        let taker = harness::spawn(&slot, move |slot| {
            let mut hold = slot.try_claim(TAKER, late + 500)?;
            assert!(slot.publish(&mut hold, 9, late + 500), "a fresh claim is ours until it expires");
            Some(hold)
        });
        let owner_ok = owner.join().unwrap();
        let taken = taker.join().unwrap();
        assert!(owner_ok != taken.is_some(), "exactly one of the owner and the taker must win");
        let (tag, _, fields) = slot.read().expect("a published slot");
        assert_eq!(tag, if owner_ok { OWNER } else { TAKER }, "the slot is the winner's");
        assert_eq!(fields, [if owner_ok { 2 } else { 9 }; 7], "the loser wrote over the winner's fields");
        if let Some(hold) = taken {
            slot.release(hold);
            assert!(slot.read().is_none(), "released");
        }
    });
}

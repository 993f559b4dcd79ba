//! The weighted max-min fair share: pure functions, the same on every
//! member, so members that read the same registry agree without talking.
//!
//! [`shares`] splits the bytes a group may keep: every member gets
//! `clamp(λ × weight, floor, demand)` for the one `λ` at which the shares
//! add up to what may be kept (or everyone gets its demand, when that is
//! less). So a member that wants less than its weighted part keeps all it
//! wants, and what it leaves is split among the others by weight; the floor
//! is what a member cannot give back (its pinned bytes). [`give_back`] then
//! spreads the bytes the group must shed over the members above their
//! shares, in proportion to how far above they are: a member at or below
//! its share gives back nothing, and none is taken below its share.
//!
//! Threads: pure functions.

/// One member, as the share sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claimant {
    /// Its weight (at least 1).
    pub(crate) weight: u64,
    /// What it would hold if unconstrained (its bytes plus what it
    /// discarded lately).
    pub(crate) demand: u64,
    /// What it cannot give back (pinned), at most its demand.
    pub(crate) floor: u64,
}

/// Fixed-point scale of `λ`: shares are `λ × weight >> FRACTION`.
const FRACTION: u32 = 16;

fn at(c: &Claimant, lambda: u128) -> u64 {
    let demand = c.demand.max(c.floor);
    let raw = (lambda * u128::from(c.weight.max(1))) >> FRACTION;
    (raw.min(u128::from(demand)) as u64).max(c.floor)
}

fn total(members: &[Claimant], lambda: u128) -> u128 {
    members.iter().map(|c| u128::from(at(c, lambda))).sum()
}

/// Each member's share of `keep` bytes (same order as `members`).
///
/// Post: every share lies between the member's floor and its demand; the
/// shares add up to `keep` exactly when `floors ≤ keep ≤ demands` (summed),
/// else to the demands (all satisfied) or the floors (nothing more to
/// take); and no member short of its demand has a smaller share per weight
/// than a member above its floor, up to one byte of rounding.
pub(crate) fn shares(keep: u64, members: &[Claimant]) -> Vec<u64> {
    let keep = u128::from(keep);
    // The largest λ whose shares fit in `keep`.
    let (mut lo, mut hi) = (0u128, 1u128 << (64 + FRACTION));
    if total(members, hi) <= keep {
        lo = hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if total(members, mid) <= keep {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut out: Vec<u64> = members.iter().map(|c| at(c, lo)).collect();
    // λ + 1 would overshoot: hand the few bytes left over to the members
    // that λ + 1 would raise, in order.
    let mut left = keep.saturating_sub(out.iter().map(|&s| u128::from(s)).sum());
    for (share, c) in out.iter_mut().zip(members) {
        let step = (u128::from(at(c, lo + 1) - *share)).min(left);
        *share += step as u64;
        left -= step;
    }
    out
}

/// How many of the `shed` bytes the group must give back fall to each
/// member, holding `held` against its `share`: in proportion to how far
/// above its share it is (rounded up, never more than that excess). A
/// member at or below its share gives back nothing.
pub(crate) fn give_back(shed: u64, held: &[u64], share: &[u64]) -> Vec<u64> {
    let excess: Vec<u64> = held.iter().zip(share).map(|(&h, &s)| h.saturating_sub(s)).collect();
    let sum: u128 = excess.iter().map(|&e| u128::from(e)).sum();
    excess
        .iter()
        .map(|&e| {
            if sum == 0 {
                return 0;
            }
            let part = (u128::from(shed) * u128::from(e)).div_ceil(sum);
            part.min(u128::from(e)) as u64
        })
        .collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn c(weight: u64, demand: u64) -> Claimant {
        Claimant { weight, demand, floor: 0 }
    }

    #[test]
    fn equal_weights_equal_shares() {
        assert_eq!(shares(300, &[c(1, 500), c(1, 500), c(1, 500)]), vec![100, 100, 100]);
    }

    #[test]
    fn weights_one_one_two() {
        assert_eq!(shares(400, &[c(1, 300), c(1, 300), c(2, 300)]), vec![100, 100, 200]);
    }

    #[test]
    fn a_member_wanting_less_keeps_all_and_the_rest_is_split_by_weight() {
        // Equal split would be 100 each; the first wants 40, so the others
        // split 260 by weight 1:2.
        let s = shares(300, &[c(1, 40), c(1, 500), c(2, 500)]);
        assert_eq!(s[0], 40);
        assert_eq!(s.iter().sum::<u64>(), 300);
        assert!(s[1].abs_diff(260 / 3) <= 1 && s[2].abs_diff(2 * 260 / 3) <= 1, "{s:?}");
    }

    #[test]
    fn everyone_satisfied_when_keep_is_ample() {
        assert_eq!(shares(1000, &[c(1, 10), c(5, 20)]), vec![10, 20]);
    }

    #[test]
    fn floors_hold() {
        let m = [Claimant { weight: 1, demand: 300, floor: 250 }, c(1, 300)];
        assert_eq!(shares(300, &m), vec![250, 50]);
        assert_eq!(shares(100, &m), vec![250, 0], "floors exceed keep: floors only");
    }

    #[test]
    fn give_back_is_proportional_to_excess() {
        // Shares 100/100/200 of held 300 each: excess 200/200/100.
        let g = give_back(250, &[300, 300, 300], &[100, 100, 200]);
        assert_eq!(g, vec![100, 100, 50]);
        assert_eq!(give_back(10, &[50, 300], &[100, 200]), vec![0, 10], "below its share: nothing");
        assert_eq!(give_back(1000, &[300], &[100]), vec![200], "never below the share");
        assert_eq!(give_back(5, &[1, 2], &[1, 2]), vec![0, 0]);
    }

    fn claimant() -> impl Strategy<Value = Claimant> {
        (1u64..=8, 0u64..1_000_000, 0u64..1_000_000).prop_map(|(weight, demand, floor)| Claimant {
            weight,
            demand,
            floor: floor.min(demand) / 4,
        })
    }

    proptest! {
        #[test]
        fn shares_are_max_min_fair(members in prop::collection::vec(claimant(), 1..12), keep in 0u64..5_000_000) {
            let s = shares(keep, &members);
            let floors: u64 = members.iter().map(|c| c.floor).sum();
            let demands: u64 = members.iter().map(|c| c.demand).sum();
            let sum: u64 = s.iter().sum();
            prop_assert_eq!(sum, keep.clamp(floors, demands));
            for (x, m) in s.iter().zip(&members) {
                prop_assert!(m.floor <= *x && *x <= m.demand, "{x} outside {m:?}");
            }
            // Max-min: nobody short of its demand has less per weight than
            // anybody above its floor (one byte of rounding each).
            for (i, a) in members.iter().enumerate() {
                for (j, b) in members.iter().enumerate() {
                    if s[i] < a.demand && s[j] > b.floor {
                        prop_assert!(
                            (u128::from(s[i]) + 1) * u128::from(b.weight) >= u128::from(s[j] - 1) * u128::from(a.weight),
                            "{i} {:?} has {} and {j} {:?} has {}", a, s[i], b, s[j]
                        );
                    }
                }
            }
        }

        #[test]
        fn give_back_never_takes_below_a_share(
            rows in prop::collection::vec((0u64..1_000_000, 0u64..1_000_000), 1..12),
            shed in 0u64..3_000_000,
        ) {
            let held: Vec<u64> = rows.iter().map(|r| r.0).collect();
            let share: Vec<u64> = rows.iter().map(|r| r.1).collect();
            let g = give_back(shed, &held, &share);
            let excess: u64 = held.iter().zip(&share).map(|(h, s)| h.saturating_sub(*s)).sum();
            let sum: u64 = g.iter().sum();
            prop_assert!(sum >= shed.min(excess), "gave {sum} of {shed} (excess {excess})");
            prop_assert!(sum <= shed + held.len() as u64, "gave {sum} of {shed}: rounding is at most a byte each");
            for ((g, h), s) in g.iter().zip(&held).zip(&share) {
                prop_assert!(*g <= h.saturating_sub(*s));
            }
        }
    }
}

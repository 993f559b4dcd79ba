//! The bit sets a segment keeps per page (free, dirty): test, count, set
//! and clear ranges, and first-fit search for a run. Plain functions on
//! `[u64]` words, no state of their own.

#[inline]
pub(super) fn test(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

pub(super) fn count(bits: &[u64]) -> usize {
    bits.iter().map(|w| w.count_ones() as usize).sum()
}

/// Sets (or clears) `n` bits from `start`.
pub(super) fn set_range(bits: &mut [u64], start: usize, n: usize, value: bool) {
    let mut i = start;
    let end = start + n;
    while i < end {
        let b = i % 64;
        let take = (64 - b).min(end - i);
        let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << b };
        if value {
            bits[i / 64] |= mask;
        } else {
            bits[i / 64] &= !mask;
        }
        i += take;
    }
}

/// The first set bit in `[from, limit)`.
pub(super) fn next_set(bits: &[u64], from: usize, limit: usize) -> Option<usize> {
    let mut i = from;
    while i < limit {
        let word = bits[i / 64] >> (i % 64);
        if word != 0 {
            let at = i + word.trailing_zeros() as usize;
            return (at < limit).then_some(at);
        }
        i = (i / 64 + 1) * 64;
    }
    None
}

/// How many consecutive set bits start at `i`, counting at most `cap`.
pub(super) fn run_len(bits: &[u64], i: usize, cap: usize) -> usize {
    let mut len = 0;
    while len < cap {
        let at = i + len;
        let ones = (bits[at / 64] >> (at % 64)).trailing_ones() as usize;
        len += ones;
        if (at + ones) % 64 != 0 || ones == 0 {
            break;
        }
    }
    len.min(cap)
}

/// The first run of `n` set bits in `[start, limit)` whose start is a
/// multiple of `align` (first fit).
pub(super) fn find_run(bits: &[u64], start: usize, limit: usize, n: usize, align: usize) -> Option<usize> {
    let mut i = next_set(bits, start, limit)?.next_multiple_of(align);
    while i + n <= limit {
        let len = run_len(bits, i, n);
        if len >= n {
            return Some(i);
        }
        i = next_set(bits, i + len + 1, limit)?.next_multiple_of(align);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_run_first_fit() {
        let mut bits = [0u64; 4];
        set_range(&mut bits, 3, 2, true);
        set_range(&mut bits, 60, 80, true);
        assert_eq!(find_run(&bits, 0, 256, 1, 1), Some(3));
        assert_eq!(find_run(&bits, 0, 256, 2, 1), Some(3));
        assert_eq!(find_run(&bits, 0, 256, 3, 1), Some(60));
        assert_eq!(find_run(&bits, 0, 256, 80, 1), Some(60));
        assert_eq!(find_run(&bits, 0, 256, 81, 1), None);
        assert_eq!(find_run(&bits, 0, 100, 41, 1), None);
        assert_eq!(find_run(&bits, 61, 256, 79, 1), Some(61));
        assert_eq!(find_run(&bits, 0, 256, 1, 4), Some(4));
        assert_eq!(find_run(&bits, 0, 256, 2, 2), Some(60));
        assert_eq!(find_run(&bits, 0, 256, 2, 8), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 16, 16), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 70, 16), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 77, 16), None);
        assert_eq!(find_run(&bits, 0, 256, 64, 64), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 76, 64), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 77, 64), None);
        assert_eq!(count(&bits), 82);
    }
}

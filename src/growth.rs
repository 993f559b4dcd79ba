//! How the manager's per-allocation tables grow: by an eighth, not double.
//!
//! Owns one rule. The manager's table and the policies' link tables hold a
//! few bytes per discardable allocation and only grow (ids are reused), so
//! `Vec`'s doubling would leave up to half of them, on average a quarter,
//! allocated and unused: strong memory the cache's per-entry budget pays
//! for. Growing by an eighth keeps the unused part below 12.5 % and the
//! amortised cost of a push constant (each element is moved at most about
//! eight times over the table's life; the tables are grown on the manager's
//! side only, never on a hot path).
//!
//! Must never: shrink a table, or be used on the global allocator's path
//! (it allocates).

/// The fewest slots a growth adds, so small tables do not grow one by one.
const MIN_STEP: usize = 64;

/// Makes room in `v` for `additional` more elements, growing its capacity
/// by at least an eighth when it must grow.
pub(crate) fn reserve<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional.max(v.len() / 8).max(MIN_STEP));
    }
}

/// Lengthens `v` to at least `len` elements filled with `fill` (an
/// id-indexed table meeting a new id), growing as [`reserve`] does.
pub(crate) fn cover<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    if len > v.len() {
        reserve(v, len - v.len());
        v.resize(len, fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_an_eighth_and_fits_the_request() {
        let mut v: Vec<u64> = vec![0; 800];
        assert_eq!(v.capacity(), 800);
        reserve(&mut v, 1);
        assert!(v.capacity() >= 900 && v.capacity() < 1000, "{}", v.capacity());
        reserve(&mut v, 5000);
        assert!(v.capacity() >= 5800, "{}", v.capacity());
        let mut small: Vec<u8> = Vec::new();
        reserve(&mut small, 1);
        assert!(small.capacity() >= MIN_STEP);
    }

    #[test]
    fn cover_fills_up_to_the_length_and_never_shortens() {
        let mut v = vec![1u8; 3];
        cover(&mut v, 6, 0);
        assert_eq!(v, [1, 1, 1, 0, 0, 0]);
        cover(&mut v, 2, 9);
        assert_eq!(v.len(), 6);
    }

    #[test]
    fn no_growth_while_there_is_room() {
        let mut v: Vec<u32> = Vec::with_capacity(100);
        v.push(1);
        reserve(&mut v, 99);
        assert_eq!(v.capacity(), 100);
    }
}

//! Property tests: the byte-offset operations of `Discardable<[u8]>` against a `Vec<u8>` model.
//!
//! Random sequences of `read_at`, `write_at`, `copy_within`, `compare_at`, `find`, `fill`, direct
//! writes through `upgrade_mut`, `discard()` and full-content upgrade checks run on a handle and on a
//! model side by side. Offsets and ranges are drawn in bounds, just past the end, reversed and near
//! `usize::MAX` (so `offset + len` overflows). Out-of-bounds input must give
//! `AccessError::OutOfBounds` with the documented range and leave the bytes unchanged; after a
//! discard every in-bounds operation must give `AccessError::Discarded` (bounds are checked first,
//! so `OutOfBounds` wins when both apply).

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::OnceLock;

use discardable::{AccessError, Discardable, Error, Manager};
use proptest::prelude::*;

/// One manager for the whole binary, with a limit far above what the tests hold, so the background
/// thread never discards behind the model's back.
fn manager() -> &'static Manager {
    static M: OnceLock<Manager> = OnceLock::new();
    M.get_or_init(|| Manager::builder().limit(1 << 30).start().expect("manager starts"))
}

/// A position (offset, range bound or byte count), resolved against the handle's length at run
/// time so that one strategy covers every length.
#[derive(Debug, Clone, Copy)]
enum Pos {
    /// `0..=len + 16`, spread evenly.
    Frac(u16),
    /// `len + d`, clamped at zero: right around the end.
    End(i8),
    /// `usize::MAX - d`: overflows any `offset + n` with `n > d`.
    Max(u8),
}

impl Pos {
    fn at(self, len: usize) -> usize {
        match self {
            Pos::Frac(f) => (f as usize * (len + 16)) / u16::MAX as usize,
            Pos::End(d) => len.saturating_add_signed(d as isize),
            Pos::Max(d) => usize::MAX - d as usize,
        }
    }

    /// As a byte count: never more than `len + 128`, so buffers stay small.
    fn count(self, len: usize) -> usize {
        match self {
            Pos::Max(d) => d as usize,
            p => p.at(len).min(len + 128),
        }
    }
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        6 => any::<u16>().prop_map(Pos::Frac),
        2 => any::<i8>().prop_map(Pos::End),
        1 => any::<u8>().prop_map(Pos::Max),
    ]
}

/// A byte count: mostly in bounds, sometimes tiny.
fn count() -> impl Strategy<Value = Pos> {
    prop_oneof![
        4 => any::<u16>().prop_map(Pos::Frac),
        2 => (0u8..8).prop_map(Pos::Max),
        1 => any::<i8>().prop_map(Pos::End),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Read {
        at: Pos,
        n: Pos,
    },
    Write {
        at: Pos,
        n: Pos,
        seed: u8,
    },
    Copy {
        start: Pos,
        end: Pos,
        dest: Pos,
    },
    /// Compares with the model's own bytes at the range, optionally changed at one position so
    /// the answer is `Less` or `Greater`.
    Compare {
        at: Pos,
        n: Pos,
        change: Option<(u16, u8)>,
    },
    Find {
        byte: u8,
        start: Pos,
        end: Pos,
    },
    Fill {
        start: Pos,
        end: Pos,
        byte: u8,
    },
    /// Writes one byte through `upgrade_mut`.
    Poke {
        at: u16,
        byte: u8,
    },
    Discard,
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    // Small alphabets for written bytes so that `find` and `compare_at` often hit.
    let small = 0u8..6;
    prop_oneof![
        3 => (pos(), count()).prop_map(|(at, n)| Op::Read { at, n }),
        3 => (pos(), count(), any::<u8>()).prop_map(|(at, n, seed)| Op::Write { at, n, seed }),
        3 => (pos(), pos(), pos()).prop_map(|(start, end, dest)| Op::Copy { start, end, dest }),
        3 => (pos(), count(), proptest::option::of((any::<u16>(), any::<u8>())))
            .prop_map(|(at, n, change)| Op::Compare { at, n, change }),
        3 => (small.clone(), pos(), pos()).prop_map(|(byte, start, end)| Op::Find { byte, start, end }),
        3 => (pos(), pos(), small).prop_map(|(start, end, byte)| Op::Fill { start, end, byte }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(at, byte)| Op::Poke { at, byte }),
        1 => Just(Op::Discard),
        1 => Just(Op::Check),
    ]
}

/// Lengths: slot-sized (< 2 KiB), the slot/span boundary, page boundaries and several pages.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        4 => 1usize..=64,
        4 => 65usize..=2048,
        1 => prop_oneof![Just(2047usize), Just(2048), Just(2049), Just(4095), Just(4096), Just(4097)],
        4 => 2049usize..=5 * 4096 + 17,
    ]
}

/// Deterministic bytes for a seed: a small alphabet mixed with arbitrary values.
fn bytes_from(seed: u8, n: usize) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x & 0x100 == 0 {
                (x % 6) as u8
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

/// The documented bounds rule for `offset..offset + n`.
fn span(offset: usize, n: usize, len: usize) -> Result<Range<usize>, AccessError> {
    match offset.checked_add(n) {
        Some(end) if end <= len => Ok(offset..end),
        Some(end) => Err(AccessError::OutOfBounds { start: offset, end, len }),
        None => Err(AccessError::OutOfBounds { start: offset, end: usize::MAX, len }),
    }
}

/// The documented bounds rule for `start..end`.
fn within(start: usize, end: usize, len: usize) -> Result<Range<usize>, AccessError> {
    if start <= end && end <= len {
        Ok(start..end)
    } else {
        Err(AccessError::OutOfBounds { start, end, len })
    }
}

/// The model: the bytes, and whether they were discarded.
struct Model {
    bytes: Vec<u8>,
    discarded: bool,
}

impl Model {
    /// `Ok(())` when the operation may run, else the error it must report.
    fn gate(&self, bounds: Result<Range<usize>, AccessError>) -> Result<Range<usize>, AccessError> {
        let range = bounds?;
        if self.discarded {
            Err(AccessError::Discarded)
        } else {
            Ok(range)
        }
    }
}

fn check_content(d: &Discardable<[u8]>, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(d.len(), model.bytes.len());
    prop_assert_eq!(d.is_empty(), model.bytes.is_empty());
    prop_assert_eq!(d.is_discarded(), model.discarded);
    match d.upgrade() {
        Some(pinned) => {
            prop_assert!(!model.discarded, "upgrade succeeded after discard");
            prop_assert!(pinned[..] == model.bytes[..], "content differs from the model");
        }
        None => prop_assert!(model.discarded, "upgrade failed but nothing discarded the bytes"),
    }
    Ok(())
}

fn run(len: usize, zeroed: bool, seed: u8, ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut d, bytes) = if zeroed {
        (Discardable::zeroed_in(len, manager()), vec![0u8; len])
    } else {
        let bytes = bytes_from(seed, len);
        (Discardable::from_slice_in(&bytes, manager()), bytes)
    };
    let mut model = Model { bytes, discarded: false };
    check_content(&d, &model)?;
    for op in ops {
        match *op {
            Op::Read { at, n } => {
                let (at, n) = (at.at(len), n.count(len));
                let mut buf = vec![0xA5u8; n];
                let got = d.read_at(at, &mut buf);
                match model.gate(span(at, n, len)) {
                    Ok(r) => {
                        prop_assert_eq!(got, Ok(()));
                        prop_assert!(buf[..] == model.bytes[r], "read_at({}, {}) returned wrong bytes", at, n);
                    }
                    Err(e) => {
                        prop_assert_eq!(got, Err(e), "read_at({}, {})", at, n);
                        prop_assert!(buf.iter().all(|&b| b == 0xA5), "failed read_at wrote into the buffer");
                    }
                }
            }
            Op::Write { at, n, seed } => {
                let (at, n) = (at.at(len), n.count(len));
                let data = bytes_from(seed, n);
                let got = d.write_at(at, &data);
                let want = model.gate(span(at, n, len));
                prop_assert_eq!(got, want.clone().map(|_| ()), "write_at({}, {})", at, n);
                if let Ok(r) = want {
                    model.bytes[r].copy_from_slice(&data);
                }
            }
            Op::Copy { start, end, dest } => {
                let (start, end, dest) = (start.at(len), end.at(len), dest.at(len));
                let got = d.copy_within(start..end, dest);
                let bounds = within(start, end, len).and_then(|src| span(dest, src.len(), len).map(|_| src));
                let want = model.gate(bounds);
                prop_assert_eq!(got, want.clone().map(|_| ()), "copy_within({}..{}, {})", start, end, dest);
                if let Ok(src) = want {
                    model.bytes.copy_within(src, dest);
                }
            }
            Op::Compare { at, n, change } => {
                let (at, n) = (at.at(len), n.count(len));
                let mut data = match span(at, n, len) {
                    Ok(r) => model.bytes[r].to_vec(),
                    Err(_) => bytes_from(n as u8, n),
                };
                if let (Some((i, b)), false) = (change, data.is_empty()) {
                    let i = i as usize % data.len();
                    data[i] = b;
                }
                let got = d.compare_at(at, &data);
                let want = model.gate(span(at, n, len)).map(|r| model.bytes[r].cmp(&data[..]));
                prop_assert_eq!(got, want, "compare_at({}, {} bytes)", at, n);
            }
            Op::Find { byte, start, end } => {
                let (start, end) = (start.at(len), end.at(len));
                let got = d.find(byte, start..end);
                let want = model
                    .gate(within(start, end, len))
                    .map(|r| model.bytes[r].iter().position(|&b| b == byte).map(|i| start + i));
                prop_assert_eq!(got, want, "find({}, {}..{})", byte, start, end);
            }
            Op::Fill { start, end, byte } => {
                let (start, end) = (start.at(len), end.at(len));
                let got = d.fill(start..end, byte);
                let want = model.gate(within(start, end, len));
                prop_assert_eq!(got, want.clone().map(|_| ()), "fill({}..{}, {})", start, end, byte);
                if let Ok(r) = want {
                    model.bytes[r].fill(byte);
                }
            }
            Op::Poke { at, byte } => match d.upgrade_mut() {
                Some(mut bytes) => {
                    prop_assert!(!model.discarded, "upgrade_mut succeeded after discard");
                    if len > 0 {
                        let i = at as usize % len;
                        bytes[i] = byte;
                        model.bytes[i] = byte;
                    }
                }
                None => prop_assert!(model.discarded, "upgrade_mut failed but nothing discarded the bytes"),
            },
            Op::Discard => {
                let first = !model.discarded;
                prop_assert_eq!(d.discard(), first, "discard() must succeed exactly once");
                model.discarded = true;
                prop_assert!(d.upgrade().is_none());
                prop_assert!(d.upgrade_mut().is_none());
            }
            Op::Check => {}
        }
        // Every operation, failed or not, must leave the bytes exactly as the model says.
        check_content(&d, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn offset_ops_match_a_vec_model(
        len in length(),
        zeroed in any::<bool>(),
        seed in any::<u8>(),
        ops in proptest::collection::vec(op(), 1..48),
    ) {
        run(len, zeroed, seed, &ops)?;
    }

    /// Bounds are checked before the pin: on a discarded handle, out-of-range input still
    /// reports `OutOfBounds`, and in-range input reports `Discarded`.
    #[test]
    fn out_of_bounds_wins_over_discarded(len in length(), at in pos(), n in count(), end in pos()) {
        let mut d = Discardable::zeroed_in(len, manager());
        prop_assert!(d.discard());
        let (at, n, end) = (at.at(len), n.count(len), end.at(len));
        let gated = |b: Result<Range<usize>, AccessError>| b.and(Err::<(), _>(AccessError::Discarded));
        let mut buf = vec![0u8; n];
        prop_assert_eq!(d.read_at(at, &mut buf), gated(span(at, n, len)));
        prop_assert_eq!(d.write_at(at, &buf), gated(span(at, n, len)));
        prop_assert_eq!(d.compare_at(at, &buf).map(|_| ()), gated(span(at, n, len)));
        prop_assert_eq!(d.find(0, at..end).map(|_| ()), gated(within(at, end, len)));
        prop_assert_eq!(d.fill(at..end, 1), gated(within(at, end, len)));
        let copy = within(at, end, len).and_then(|src| span(0, src.len(), len));
        prop_assert_eq!(d.copy_within(at..end, 0), gated(copy));
    }
}

#[test]
fn overflow_near_usize_max_is_out_of_bounds() {
    let mut d = Discardable::from_slice_in(&[1u8, 2, 3, 4], manager());
    let max = usize::MAX;
    fn oob<T>(start: usize, end: usize) -> Result<T, AccessError> {
        Err(AccessError::OutOfBounds { start, end, len: 4 })
    }
    assert_eq!(d.read_at(max, &mut [0u8; 1]), oob(max, max));
    assert_eq!(d.read_at(max, &mut []), oob(max, max));
    assert_eq!(d.read_at(max - 1, &mut [0u8; 2]), oob(max - 1, max));
    assert_eq!(d.read_at(max - 1, &mut [0u8; 3]), oob(max - 1, max), "end saturates on overflow");
    assert_eq!(d.write_at(max - 2, &[9u8; 8]), oob(max - 2, max));
    assert_eq!(d.compare_at(max, &[1u8]), oob(max, max));
    assert_eq!(d.find(1, max - 1..max), oob(max - 1, max));
    assert_eq!(d.fill(Range { start: 3, end: 2 }, 0), oob(3, 2), "reversed range");
    assert_eq!(d.fill(0..5, 0), oob(0, 5));
    assert_eq!(d.copy_within(0..2, max), oob(max, max));
    assert_eq!(d.copy_within(0..2, max - 1), oob(max - 1, max));
    assert_eq!(d.copy_within(Range { start: 2, end: 1 }, 0), oob(2, 1));
    assert_eq!(d.copy_within(0..4, 1), oob(1, 5));
    // In-bounds edge cases succeed.
    assert_eq!(d.read_at(4, &mut []), Ok(()));
    assert_eq!(d.find(1, 4..4), Ok(None));
    assert_eq!(d.copy_within(4..4, 4), Ok(()));
    assert_eq!(d.copy_within(0..3, 1), Ok(()));
    assert_eq!(&d.upgrade().unwrap()[..], &[1, 1, 2, 3], "failed operations changed nothing");
    assert_eq!(d.compare_at(1, &[1, 2, 3]), Ok(Ordering::Equal));
    assert_eq!(d.compare_at(1, &[1, 2]), Ok(Ordering::Equal));
    assert_eq!(d.compare_at(0, &[1, 1, 2, 4]), Ok(Ordering::Less));
}

#[test]
fn zeroed_in_is_zero_even_on_reused_memory() {
    let m = manager();
    // Dirty slots and spans of several sizes, free them, then ask for zeroes of the same sizes.
    let sizes = [1usize, 16, 100, 129, 700, 2048, 2049, 4096, 3 * 4096 + 5, 40_000];
    for round in 0..4 {
        let dirty: Vec<_> = sizes.iter().map(|&n| Discardable::from_slice_in(&vec![0xEEu8; n], m)).collect();
        if round % 2 == 1 {
            for d in &dirty {
                assert!(d.discard());
            }
        }
        drop(dirty);
        for &n in &sizes {
            let z = Discardable::zeroed_in(n, m);
            let pinned = z.upgrade().expect("fresh allocation is alive");
            assert_eq!(pinned.len(), n);
            assert!(pinned.iter().all(|&b| b == 0), "zeroed_in({n}) has non-zero bytes (round {round})");
        }
    }
}

#[test]
fn zeroed_in_rejects_impossible_lengths() {
    assert!(matches!(Discardable::try_zeroed_in(usize::MAX, manager()), Err(Error::Layout)));
    assert!(matches!(Discardable::try_zeroed_in(isize::MAX as usize, manager()), Err(Error::Os(_))));
}

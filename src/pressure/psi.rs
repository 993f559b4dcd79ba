//! Pressure stall information: the `some avg10` reading and PSI triggers.
//!
//! A PSI trigger is a line `"some <stall us> <window us>"` written to a
//! `memory.pressure` file (the cgroup v2 group's, or `/proc/pressure/memory`)
//! opened read-write; the kernel then reports `POLLPRI` on that descriptor
//! at most once per window whenever tasks stalled on memory for at least the
//! stall time within the window. The trigger lives as long as the
//! descriptor. Kernels restrict the windows they accept (unprivileged
//! triggers, and on some kernels all triggers, need multiples of 2 s), so
//! [`arm`] tries the ideal 1 s window first and falls back to 2 s.
//!
//! Threads: the manager thread only.
//!
//! References: <https://docs.kernel.org/accounting/psi.html>.

use std::ffi::CStr;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::signal::FileFault;
use crate::os;

/// Stall fraction that counts as pressure: 7.5 % of the window (150 ms in
/// 2 s), low enough to act before the stall becomes thrashing, high enough
/// that the reclaim of a busy page cache does not trip it.
pub(crate) const STALL_PER_MILLE: u64 = 75;

/// `some avg10` at or above this (hundredths of a percent) counts as a
/// stall where no trigger could be armed: the same 7.5 %.
pub(crate) const AVG10_STALL: u64 = STALL_PER_MILLE * 10;

/// Trigger windows tried in order: the ideal 1 s, then the 2 s that every
/// kernel with triggers accepts.
pub(crate) const WINDOWS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// Parses the `some` line's `avg10` as hundredths of a percent
/// (`"avg10=7.53"` reads 753). `None` if absent or garbled.
pub(crate) fn parse_some_avg10(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let value = line.split_whitespace().find_map(|w| w.strip_prefix("avg10="))?;
    parse_hundredths(value)
}

/// `"12.34"` → 1234, `"5"` → 500, `"0.5"` → 50; more than two decimals are
/// truncated.
fn parse_hundredths(text: &str) -> Option<u64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let mut hundredths = 0;
    let mut digits = frac.bytes();
    for scale in [10, 1] {
        hundredths += scale * digits.next().map_or(0, |d| u64::from(d - b'0'));
    }
    int.checked_mul(100)?.checked_add(hundredths)
}

/// Formats the trigger line for `window` into `buf`, NUL-terminated as the
/// kernel requires (it overwrites the last byte written with a NUL).
fn trigger_line(buf: &mut [u8; 64], window: Duration) -> &[u8] {
    let window_us = window.as_micros() as u64;
    let stall_us = window_us * STALL_PER_MILLE / 1000;
    let mut cursor = &mut buf[..];
    // Cannot fail: two u64s and 8 bytes of text fit in 64 bytes.
    let _ = write!(cursor, "some {stall_us} {window_us}\0");
    let left = cursor.len();
    &buf[..64 - left]
}

/// Arms a PSI trigger on the pressure file `path`: returns the descriptor
/// to poll for `POLLPRI` and the window the kernel accepted.
pub(crate) fn arm(path: &CStr) -> Result<(OwnedFd, Duration), FileFault> {
    let mut last = None;
    for window in WINDOWS {
        // A descriptor holds one trigger, and a rejected write leaves it
        // usable on some kernels but not all: open afresh each time.
        let fd = os::open_rdwr(path).map_err(|e| FileFault::os("PSI trigger", e))?;
        let mut buf = [0u8; 64];
        match os::write_fd(fd.as_fd(), trigger_line(&mut buf, window)) {
            Ok(()) => return Ok((fd, window)),
            Err(e) => last = Some(e),
        }
    }
    Err(FileFault::os("PSI trigger", last.expect("at least one window was tried")))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_avg10() {
        let text = "some avg10=7.53 avg60=0.10 avg300=0.00 total=12345\n\
                    full avg10=1.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_some_avg10(text), Some(753));
        assert_eq!(parse_some_avg10("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"), Some(0));
        assert_eq!(parse_some_avg10("some avg10=100.00 avg60=0 total=0\n"), Some(10_000));
        assert_eq!(parse_some_avg10("full avg10=1.00\n"), None, "only the some line counts");
        assert_eq!(parse_some_avg10("some avg10=x.00\n"), None);
        assert_eq!(parse_some_avg10(""), None);
    }

    #[test]
    fn parses_hundredths() {
        assert_eq!(parse_hundredths("12.34"), Some(1234));
        assert_eq!(parse_hundredths("5"), Some(500));
        assert_eq!(parse_hundredths("0.5"), Some(50));
        assert_eq!(parse_hundredths("0.129"), Some(12));
        assert_eq!(parse_hundredths(".5"), None);
        assert_eq!(parse_hundredths("-1.0"), None);
        assert_eq!(parse_hundredths("1.a"), None);
    }

    #[test]
    fn formats_trigger_lines() {
        let mut buf = [0u8; 64];
        assert_eq!(trigger_line(&mut buf, Duration::from_secs(2)), b"some 150000 2000000\0");
        assert_eq!(trigger_line(&mut buf, Duration::from_secs(1)), b"some 75000 1000000\0");
    }
}

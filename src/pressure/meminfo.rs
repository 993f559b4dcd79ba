//! The host signal: `/proc/meminfo`'s `MemTotal` and `MemAvailable`.
//!
//! `MemAvailable` is the kernel's own estimate of how much memory can be
//! handed out without swapping (free memory plus the reclaimable part of
//! the page cache and slab), so usage is `MemTotal - MemAvailable` and the
//! limit is `MemTotal`.
//!
//! Threads: the manager thread only.

/// The two lines of `/proc/meminfo` the host signal needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemInfo {
    pub(crate) total: u64,
    pub(crate) available: u64,
}

impl MemInfo {
    /// `(usage, limit)` in bytes: `MemTotal - MemAvailable` against `MemTotal`.
    pub(crate) fn usage_and_limit(&self) -> (usize, usize) {
        let total = usize::try_from(self.total).unwrap_or(usize::MAX);
        let used = usize::try_from(self.total.saturating_sub(self.available)).unwrap_or(usize::MAX);
        (used, total)
    }
}

/// Parses `MemTotal` and `MemAvailable` (kB, as the file says, though it
/// means KiB) out of `/proc/meminfo`. `None` when either is missing or
/// garbled, or `MemTotal` is zero. Kernels before 3.14 have no
/// `MemAvailable`; they are not supported by this signal.
pub(crate) fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let mut total = None;
    let mut available = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        let bytes = match words.next() {
            Some("kB") => value.checked_mul(1024)?,
            None => value,
            Some(_) => return None,
        };
        *slot = Some(bytes);
        if total.is_some() && available.is_some() {
            break;
        }
    }
    let info = MemInfo { total: total?, available: available? };
    (info.total > 0).then_some(info)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_layout() {
        let text = "MemTotal:       24684084 kB\nMemFree:        22462484 kB\n\
                    MemAvailable:   24232544 kB\nBuffers:            9296 kB\n";
        let info = parse_meminfo(text).unwrap();
        assert_eq!(info, MemInfo { total: 24684084 * 1024, available: 24232544 * 1024 });
        assert_eq!(info.usage_and_limit(), ((24684084 - 24232544) * 1024, 24684084 * 1024));
    }

    #[test]
    fn rejects_missing_or_garbled_lines() {
        assert_eq!(parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\n"), None, "no MemAvailable");
        assert_eq!(parse_meminfo("MemTotal: x kB\nMemAvailable: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 1 MB\nMemAvailable: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn available_above_total_is_zero_usage() {
        let info = parse_meminfo("MemAvailable: 20 kB\nMemTotal: 10 kB\n").unwrap();
        assert_eq!(info.usage_and_limit(), (0, 10 * 1024));
    }
}

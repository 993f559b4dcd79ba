//! The process's memory cgroup: where it is and what its limit is.
//!
//! Reads `/proc/self/cgroup`, then the v2 `memory.high`/`memory.max` or the
//! v1 `memory.limit_in_bytes` of that cgroup. Every failure means "no
//! limit known", never an error.

use std::ffi::CString;

/// Mount points searched for each hierarchy.
const V2_ROOTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
const V1_ROOT: &str = "/sys/fs/cgroup/memory";

/// Reads a small text file (at most 4 KiB) with the `os` layer.
pub(crate) fn read_small(path: &str) -> Option<String> {
    let c = CString::new(path).ok()?;
    let mut buf = [0u8; 4096];
    let n = crate::os::read_file(&c, &mut buf).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// Parses a limit file's value: bytes, or `None` for "max" and for v1's
/// "unlimited" (a page-rounded `i64::MAX`).
pub(crate) fn parse_limit(text: &str) -> Option<usize> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    let value: u64 = text.parse().ok()?;
    if value >= 1 << 62 {
        return None;
    }
    usize::try_from(value).ok()
}

/// The cgroup paths of this process from `/proc/self/cgroup`:
/// (v2 path, v1 memory path).
pub(crate) fn parse_proc_cgroup(text: &str) -> (Option<&str>, Option<&str>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        }
    }
    (v2, v1)
}

/// The smallest memory limit of this process's cgroup, if any is set.
pub(crate) fn cgroup_limit() -> Option<usize> {
    let text = read_small("/proc/self/cgroup")?;
    let (v2, v1) = parse_proc_cgroup(&text);
    let mut best: Option<usize> = None;
    let mut consider = |v: Option<usize>| {
        if let Some(v) = v {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
    };
    if let Some(path) = v1 {
        consider(read_small(&format!("{V1_ROOT}{path}/memory.limit_in_bytes")).and_then(|t| parse_limit(&t)));
    }
    if let Some(path) = v2 {
        for root in V2_ROOTS {
            for file in ["memory.high", "memory.max"] {
                consider(read_small(&format!("{root}{path}/{file}")).and_then(|t| parse_limit(&t)));
            }
        }
    }
    best
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_lines() {
        let text = "12:memory:/docker/abc\n5:cpu,cpuacct:/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(parse_proc_cgroup(text), (Some("/user.slice/session-1.scope"), Some("/docker/abc")));
        assert_eq!(parse_proc_cgroup("garbage\n"), (None, None));
    }

    #[test]
    fn parses_limits() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_limit("nonsense"), None);
    }

    #[test]
    fn default_limit_is_positive_and_bounded() {
        let l = crate::pressure::default_limit();
        assert!(l > 0);
        if let Some(p) = crate::os::physical_memory() {
            assert!(l <= p / 4);
        }
    }
}

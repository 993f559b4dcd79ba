//! `discardable-top`: shows the groups of `discardable` managers live, one
//! row per member (pid, weight, held, share, demand, pinned, reclaims, age
//! of the heartbeat), read from each group's registry under `/dev/shm`
//! without joining the group.
//!
//! ```text
//! discardable-top [--once] [--json] [--interval MS] [--frames N] [GROUP...]
//! ```
//!
//! Without names it shows every group whose registry it finds. `--once`
//! prints one table and exits (scripts and tests); `--json` prints one
//! machine-readable snapshot and exits; otherwise the table is redrawn
//! every `--interval` milliseconds (default 1000, at least 50), each frame
//! starting by clearing the screen (`ESC [2J ESC [H`), until interrupted,
//! until its output is closed, or, with `--frames N`, after `N` frames
//! (the last one is not followed by a wait).
//!
//! Owns: argument parsing and rendering only; every figure comes from
//! `discardable::group_members`, which validates the registry.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use discardable::{group_members, GroupMember};

/// Where registries live and how their files are named.
const DIR: &str = "/dev/shm";
const PREFIX: &str = "discardable-group-";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    once: bool,
    json: bool,
    interval: Option<Duration>,
    /// Live view: stop after this many frames (`None`: never).
    frames: Option<u64>,
    groups: Vec<String>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--once" => out.once = true,
            "--json" => out.json = true,
            "--interval" => {
                let ms: u64 = args.next().and_then(|v| v.parse().ok()).ok_or("--interval takes milliseconds")?;
                out.interval = Some(Duration::from_millis(ms.max(50)));
            }
            "--frames" => {
                let n: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--frames takes a count of at least 1")?;
                out.frames = Some(n);
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            name => out.groups.push(name.to_owned()),
        }
    }
    Ok(out)
}

/// The names of every group with a registry file.
fn all_groups() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(PREFIX).map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// One group's snapshot: its members or why they cannot be read.
type Snapshot = (String, Result<Vec<GroupMember>, String>);

fn snapshot(args: &Args) -> Vec<Snapshot> {
    let names = if args.groups.is_empty() { all_groups() } else { args.groups.clone() };
    names.into_iter().map(|n| (n.clone(), group_members(&n).map_err(|e| e.to_string()))).collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// The plain table: a header line per group, then one row per member.
fn table(groups: &[Snapshot]) -> String {
    let mut out = String::new();
    if groups.is_empty() {
        out.push_str("no groups\n");
    }
    for (name, members) in groups {
        match members {
            Err(e) => {
                let _ = writeln!(out, "group {name}: {e}");
            }
            Ok(members) => {
                let held: u64 = members.iter().map(|m| m.held).sum();
                let _ = writeln!(out, "group {name}: {} members, {} MiB held", members.len(), mib(held));
                let _ = writeln!(
                    out,
                    "{:>8} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7}",
                    "PID", "WEIGHT", "HELD MiB", "SHARE MiB", "DEMAND MiB", "PINNED MiB", "RECLAIMS", "AGE ms"
                );
                for m in members {
                    let _ = writeln!(
                        out,
                        "{:>8} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7}",
                        m.pid,
                        m.weight,
                        mib(m.held),
                        mib(m.share),
                        mib(m.demand),
                        mib(m.pinned),
                        m.reclaims,
                        m.heartbeat_age.as_millis()
                    );
                }
            }
        }
    }
    out
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"groups":[{"name":…,"members":[{…}]} or {"name":…,"error":…}]}`, one
/// line; bytes as integers, the heartbeat's age in ms.
fn json(groups: &[Snapshot]) -> String {
    let items: Vec<String> = groups
        .iter()
        .map(|(name, members)| match members {
            Err(e) => format!("{{\"name\":{},\"error\":{}}}", quote(name), quote(e)),
            Ok(members) => {
                let rows: Vec<String> = members
                    .iter()
                    .map(|m| {
                        format!(
                            "{{\"slot\":{},\"pid\":{},\"weight\":{},\"held\":{},\"share\":{},\"demand\":{},\"pinned\":{},\"reclaims\":{},\"age_ms\":{}}}",
                            m.slot,
                            m.pid,
                            m.weight,
                            m.held,
                            m.share,
                            m.demand,
                            m.pinned,
                            m.reclaims,
                            m.heartbeat_age.as_millis()
                        )
                    })
                    .collect();
                format!("{{\"name\":{},\"members\":[{}]}}", quote(name), rows.join(","))
            }
        })
        .collect();
    format!("{{\"groups\":[{}]}}\n", items.join(","))
}

fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("discardable-top: {e}");
            }
            eprintln!("usage: discardable-top [--once] [--json] [--interval MS] [--frames N] [GROUP...]");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    if args.json {
        print!("{}", json(&snapshot(&args)));
        return;
    }
    if args.once {
        print!("{}", table(&snapshot(&args)));
        return;
    }
    live(&args);
}

/// The live view: a frame (clear the screen, home the cursor, the table)
/// every interval, until `--frames` are drawn or the output is closed.
fn live(args: &Args) {
    let interval = args.interval.unwrap_or(Duration::from_secs(1));
    let mut out = std::io::stdout().lock();
    let mut drawn = 0u64;
    loop {
        let frame = format!("\x1b[2J\x1b[H{}", table(&snapshot(args)));
        if out.write_all(frame.as_bytes()).and_then(|()| out.flush()).is_err() {
            return; // nobody reads any more (a closed pipe, a gone terminal)
        }
        drawn += 1;
        if args.frames.is_some_and(|n| drawn >= n) {
            return;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_names() {
        let a = parse(["--once", "web", "--json", "--interval", "10"].map(String::from).into_iter()).unwrap();
        assert!(a.once && a.json);
        assert_eq!(a.interval, Some(Duration::from_millis(50)), "clamped to 50 ms");
        assert_eq!(a.groups, ["web"]);
        assert_eq!(a.frames, None);
        assert!(parse(["--bogus"].map(String::from).into_iter()).is_err());
        let f = parse(["--frames", "3", "web"].map(String::from).into_iter()).unwrap();
        assert_eq!((f.frames, f.once), (Some(3), false));
        for bad in [&["--frames", "0"][..], &["--frames", "x"], &["--frames"]] {
            assert!(parse(bad.iter().map(|s| s.to_string())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_escapes_and_reports_errors() {
        let out = json(&[("a\"b".into(), Err("no\nfile".into()))]);
        assert_eq!(out, "{\"groups\":[{\"name\":\"a\\\"b\",\"error\":\"no\\u000afile\"}]}\n");
    }
}

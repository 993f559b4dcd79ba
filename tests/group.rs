//! Proof of issue 15 under a real cgroup v1 memory limit: group members
//! share what the group may keep by weight, max-min fair.
//!
//! Each scenario makes a fresh child group of the v1 memory controller
//! (`tests/support/cgroup_v1.rs`) and re-executes this test binary inside
//! it (joining between `fork` and `exec`), running the `child_role` test,
//! which returns at once unless `DISCARDABLE_GROUP_ROLE` names a role:
//!
//! - `member`: one manager, limit = the cgroup's limit (so only the shared
//!   signal acts), in the group with the given weight, filling the given
//!   MiB of 1 MiB discardable allocations; then answers commands on stdin
//!   (`stats`, `refill`), one line each, until stdin closes;
//! - `spiker`: grows strong memory (the system allocator's, every page
//!   written) by the given MiB in 4 MiB steps every 10 ms and holds it;
//! - `inproc`: three managers in one process (weights 1, 3, 4; the last
//!   one wants only 30 MiB) and a strong spike of its own.
//!
//! The scenarios:
//!
//! - `three_processes_share_by_weight`: 1 GiB group, members of weights 1,
//!   1, 2 each holding 300 MiB, a 400 MiB strong spike: no OOM kill, and
//!   each holds its weighted share of what the group kept within 20 %;
//!   then the weight-2 member is SIGKILLed: its slot is gone from the
//!   registry within the 3 s lease (plus one heartbeat), and when the two
//!   others refill, they split by weight (equally) what the group keeps,
//!   each more than before; then a late joiner (weight 1, 300 MiB) gets
//!   its third at the next reclaim.
//! - `managers_in_one_process_share_by_weight`: a 512 MiB group, the
//!   `inproc` child: the 30 MiB member keeps all of it, the others split
//!   the rest 1:3 within 20 %.
//!
//! And without a cgroup: a registry another user owns is an error from
//! `start()` (root only: it needs `chown`), so are bad names and weight 0,
//! and a registry corrupted under a running member is counted in
//! `Stats::group_faults` while the member acts alone, until repaired.
//!
//! In every scenario where the group reclaims (the spike, the refill, the
//! late joiner, the `inproc` spike), the holdings must also settle within
//! `SETTLE_BOUND` (3 s, against the goal of shares met within 1 s
//! of the reclaim) of the end of what made it reclaim.
//!
//! The measured figures are printed (`--nocapture`). Skips, with the
//! reason on stderr, without root or a writable v1 memory controller; with
//! `CI=true` it fails instead. One scenario at a time.
#![cfg(not(loom))]

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use discardable::{group_members, Discardable, Manager, Signal};

#[path = "support/cgroup_v1.rs"]
mod cgroup_v1;
use cgroup_v1::{join_group, Group, SysBuf};

const ROLE_ENV: &str = "DISCARDABLE_GROUP_ROLE";
const ARGS_ENV: &str = "DISCARDABLE_GROUP_ARGS";
const MIB: u64 = 1 << 20;
/// How long the parent waits for any one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// The tolerance on each share.
const TOLERANCE: f64 = 0.20;
/// How soon the members' holdings must have settled (and then be at their
/// shares: `assert_weighted`), counted from the end of what made the group
/// reclaim (the spike grown, the refill or a joiner's fill done; the
/// reclaim runs during it). The issue asks for shares met within 1 s of
/// the reclaim; a settle is seen only once two readings 300 ms apart agree,
/// and this 2-core host is shared, so the bound is three times the goal.
/// Still well below `settle`'s 10 s give-up, which it therefore catches: a
/// group that keeps shedding, or only drifts to its shares, fails here.
const SETTLE_BOUND: Duration = Duration::from_secs(3);

static SERIAL: Mutex<()> = Mutex::new(());

/// The entry point of the re-executed children; does nothing in the parent.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    let args: Vec<String> = std::env::var(ARGS_ENV).unwrap().split(' ').map(str::to_owned).collect();
    match role.as_str() {
        "member" => member(&args[0], args[1].parse().unwrap(), args[2].parse().unwrap(), args[3].parse().unwrap()),
        "spiker" => spiker(args[0].parse().unwrap()),
        "inproc" => inproc(&args[0], args[1].parse().unwrap()),
        _ => panic!("unknown role {role}"),
    }
}

fn skip(name: &str, reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{name}: cannot run: {reason} (CI=true: failing instead of skipping)");
    }
    let _ = std::io::stderr().write_all(format!("SKIPPED {name}: {reason}\n").as_bytes());
}

/// A unique group name, and its registry removed when done.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Name {
        Name(format!("test-{tag}-{}", std::process::id()))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/discardable-group-{}", self.0));
    }
}

/// A child in the cgroup that answers one line per command.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(group: &Group, role: &str, args: &str) -> Proc {
        let procs = CString::new(group.dir.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["child_role", "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_ENV, role)
            .env(ARGS_ENV, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs between fork and exec and makes only
        // async-signal-safe calls on memory prepared before the fork.
        unsafe { cmd.pre_exec(move || join_group(&procs)) };
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { what: format!("{role} {args}"), stdin: child.stdin.take(), child, lines }
    }

    /// The next line starting with `prefix`, its `key=value` words.
    fn reply(&mut self, prefix: &str) -> Vec<(String, u64)> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                let status = self.child.try_wait();
                panic!("{}: no {prefix} line ({e}); status {status:?} (SIGKILL 9 is the OOM killer's)", self.what)
            });
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
                    .collect();
            }
        }
    }

    fn ask(&mut self, command: &str, prefix: &str) -> Vec<(String, u64)> {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.reply(prefix)
    }

    fn held(&mut self) -> u64 {
        get(&self.ask("stats", "STATS"), "held")
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}: {status} (SIGKILL is the OOM killer's signal)", self.what);
    }
}

fn get(kv: &[(String, u64)], key: &str) -> u64 {
    kv.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key} in {kv:?}")).1
}

/// Polls the members' held bytes until two readings 300 ms apart agree
/// within 1 MiB each (or 10 s pass); returns the last reading and how long
/// it took to settle.
fn settle(members: &mut [&mut Proc]) -> (Vec<u64>, Duration) {
    let start = Instant::now();
    let mut last: Vec<u64> = members.iter_mut().map(|m| m.held()).collect();
    loop {
        thread::sleep(Duration::from_millis(300));
        let now: Vec<u64> = members.iter_mut().map(|m| m.held()).collect();
        if now.iter().zip(&last).all(|(a, b)| a.abs_diff(*b) <= MIB) || start.elapsed() > Duration::from_secs(10) {
            return (now, start.elapsed());
        }
        last = now;
    }
}

/// Asserts a settle (`settle`, or the `inproc` child's) took at most
/// [`SETTLE_BOUND`]; prints the figure.
fn assert_settled(what: &str, took: Duration) {
    eprintln!("{what}: settled {took:.2?} (bound {SETTLE_BOUND:?}; goal 1 s)");
    assert!(took <= SETTLE_BOUND, "{what}: holdings settled only after {took:.2?} (bound {SETTLE_BOUND:?})");
}

/// Asserts each member holds its weighted share of what the group kept,
/// within [`TOLERANCE`]; prints the figures.
fn assert_weighted(what: &str, held: &[u64], weights: &[u64]) {
    let kept: u64 = held.iter().sum();
    let total: u64 = weights.iter().sum();
    let rows: Vec<String> = held
        .iter()
        .zip(weights)
        .map(|(h, w)| format!("w{w} {} MiB (share {} MiB)", h / MIB, kept * w / total / MIB))
        .collect();
    eprintln!("{what}: kept {} MiB: {}", kept / MIB, rows.join(", "));
    for (h, w) in held.iter().zip(weights) {
        let share = (kept * w / total) as f64;
        let off = (*h as f64 - share).abs() / share;
        assert!(off <= TOLERANCE, "{what}: held {h} against share {share} ({:.0} % off): {rows:?}", off * 100.0);
    }
}

/// A fresh cgroup of `limit` bytes and a group name, or `None` after
/// skipping.
fn setup(name: &str, limit: usize, tag: &str) -> Option<(Group, Name)> {
    match Group::create("group", limit) {
        Ok(group) => Some((group, Name::new(tag))),
        Err(reason) => {
            skip(name, &reason);
            None
        }
    }
}

#[test]
fn three_processes_share_by_weight() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = "three_processes_share_by_weight";
    let limit = 1usize << 30;
    let Some((group, g)) = setup(name, limit, "three") else { return };
    let mut m: Vec<Proc> =
        [1, 1, 2].iter().map(|w| Proc::spawn(&group, "member", &format!("{} {w} 300 {limit}", g.0))).collect();
    for p in &mut m {
        p.reply("FILLED");
    }
    // Each child in the registry with its weight (slots go to whoever
    // claims first, so not in spawn order).
    let members = group_members(&g.0).unwrap();
    let mut seen: Vec<(u32, u32)> = members.iter().map(|x| (x.pid, x.weight)).collect();
    let mut want: Vec<(u32, u32)> = m.iter().zip([1, 1, 2]).map(|(p, w)| (p.child.id(), w)).collect();
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want, "{members:?}");

    // A 400 MiB strong spike in the same cgroup.
    let mut spiker = Proc::spawn(&group, "spiker", "400");
    spiker.reply("GROWN");
    let [a, b, c] = &mut m[..] else { unreachable!() };
    let (held, took) = settle(&mut [a, b, c]);
    assert_settled(&format!("{name}: after the spike"), took);
    assert_weighted(&format!("{name}: weights 1, 1, 2"), &held, &[1, 1, 2]);
    assert!(held.iter().all(|&h| h < 300 * MIB), "every member gave back: {held:?}");
    assert_eq!(group.oom_kills(), Some(0), "no OOM kill");
    for p in &mut m {
        let s = p.ask("stats", "STATS");
        eprintln!("{name}: {}: {s:?}", p.what);
        assert_eq!(get(&s, "faults"), 0, "{}: registry faults", p.what);
    }

    // SIGKILL the weight-2 member: its slot expires within the lease.
    let killed = m.pop().unwrap();
    let pid = killed.child.id();
    // SAFETY: kill has no memory preconditions; `pid` is our own child,
    // which we have not waited for, so the pid is still ours.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let mut killed = killed;
    let _ = killed.child.wait();
    let t = Instant::now();
    while group_members(&g.0).unwrap().iter().any(|x| x.pid == pid) {
        assert!(
            t.elapsed() < Duration::from_millis(4500),
            "slot of SIGKILLed {pid} still listed after {:?}",
            t.elapsed()
        );
        thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{name}: the SIGKILLed member's slot went after {:.2?} (lease 3 s)", t.elapsed());
    drop(killed.stdin.take());

    // Its share goes to the others: they refill and split by weight.
    for p in &mut m {
        p.ask("refill", "REFILLED");
    }
    let [a, b] = &mut m[..] else { unreachable!() };
    let (after, took) = settle(&mut [a, b]);
    assert_settled(&format!("{name}: after the refill"), took);
    assert_weighted(&format!("{name}: after the kill, weights 1, 1"), &after, &[1, 1]);
    for (before, now) in held.iter().zip(&after) {
        assert!(now > before, "the killed member's share went to the others: {held:?} -> {after:?}");
    }

    // A late joiner gets its share at the next reclaim.
    m.push(Proc::spawn(&group, "member", &format!("{} 1 300 {limit}", g.0)));
    m[2].reply("FILLED");
    let [a, b, c] = &mut m[..] else { unreachable!() };
    let (late, took) = settle(&mut [a, b, c]);
    assert_settled(&format!("{name}: after the late joiner"), took);
    assert_weighted(&format!("{name}: with a late joiner, weights 1, 1, 1"), &late, &[1, 1, 1]);
    assert_eq!(group.oom_kills(), Some(0), "no OOM kill");
    for p in m {
        p.finish();
    }
    spiker.finish();
}

#[test]
fn managers_in_one_process_share_by_weight() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = "managers_in_one_process_share_by_weight";
    let limit = 512usize << 20;
    let Some((group, g)) = setup(name, limit, "inproc") else { return };
    let mut p = Proc::spawn(&group, "inproc", &format!("{} {limit}", g.0));
    let r = p.reply("RESULT");
    let (a, b, small) = (get(&r, "a"), get(&r, "b"), get(&r, "small"));
    eprintln!(
        "{name}: settled in {} ms: w1 {} MiB, w3 {} MiB, w4 (wants 30 MiB) {} MiB, small discards {}",
        get(&r, "ms"),
        a / MIB,
        b / MIB,
        small / MIB,
        get(&r, "small_discards")
    );
    assert_settled(&format!("{name}: after the spike"), Duration::from_millis(get(&r, "settle_ms")));
    assert!(a + b < 400 * MIB, "the group gave back: {r:?}");
    assert_eq!(small, 30 * MIB, "a member that wants less than its share keeps all of it: {r:?}");
    assert_eq!(get(&r, "small_discards"), 0, "{r:?}");
    assert_weighted(name, &[a, b], &[1, 3]);
    assert_eq!(get(&r, "faults"), 0, "{r:?}");
    p.finish();
    assert_eq!(group.oom_kills(), Some(0), "no OOM kill");
}

/// `count` 1 MiB discardable allocations, every page written.
fn fill(m: &Manager, count: usize) -> Vec<Discardable<[u8]>> {
    (0..count).map(|i| Discardable::fill_in(MIB as usize, m, |b| b.fill(i as u8)).unwrap().into_handle()).collect()
}

fn member(group: &str, weight: u32, mib: usize, limit: usize) {
    let m = Manager::builder().limit(limit).group(group).weight(weight).start().unwrap();
    let mut handles = fill(&m, mib);
    println!("FILLED");
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().as_str() {
            "stats" => {
                let s = m.stats();
                println!(
                    "STATS held={} faults={} discarded={} cgroup_reclaims={} psi_reclaims={} host_reclaims={}",
                    s.discardable_bytes,
                    s.group_faults,
                    s.discarded_bytes,
                    s.reclaims(Signal::CgroupV1),
                    s.reclaims(Signal::Psi),
                    s.reclaims(Signal::MemAvailable)
                );
            }
            "refill" => {
                // Replace what was discarded, as a cache would on misses.
                for (i, h) in handles.iter_mut().enumerate() {
                    if h.is_discarded() {
                        *h = Discardable::fill_in(MIB as usize, &m, |b| b.fill(i as u8)).unwrap().into_handle();
                        thread::sleep(Duration::from_millis(2));
                    }
                }
                println!("REFILLED");
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// Strong memory from the system allocator, `mib` MiB in 4 MiB steps every
/// 10 ms, every page written.
fn grow(mib: usize) -> Vec<SysBuf> {
    let mut bufs = Vec::new();
    for _ in 0..mib / 4 {
        let mut b = SysBuf::new(4 << 20);
        for page in b.as_mut().chunks_mut(4096) {
            page[0] = 1;
        }
        bufs.push(b);
        thread::sleep(Duration::from_millis(10));
    }
    bufs
}

fn spiker(mib: usize) {
    let bufs = grow(mib);
    println!("GROWN");
    for _ in std::io::stdin().lock().lines() {}
    drop(bufs);
}

fn inproc(group: &str, limit: usize) {
    let start = |w| Manager::builder().limit(limit).group(group).weight(w).start().unwrap();
    let (ma, mb, ms) = (start(1), start(3), start(4));
    let _ha = fill(&ma, 200);
    let _hb = fill(&mb, 200);
    let _hs = fill(&ms, 30);
    let t = Instant::now();
    let _spike = grow(200);
    let grown = Instant::now();
    let held = || [&ma, &mb, &ms].map(|m| m.stats().discardable_bytes as u64);
    let mut last = held();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = held();
        if now.iter().zip(&last).all(|(a, b)| a.abs_diff(*b) <= MIB) || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let [a, b, small] = held();
    let faults: u64 = [&ma, &mb, &ms].iter().map(|m| m.stats().group_faults).sum();
    println!(
        "RESULT a={a} b={b} small={small} small_discards={} faults={faults} ms={} settle_ms={}",
        ms.stats().discarded_count,
        t.elapsed().as_millis(),
        grown.elapsed().as_millis()
    );
    for _ in std::io::stdin().lock().lines() {}
}

/// A registry file another user owns is refused by `start()` with an
/// error naming the cause, and never opened (its bytes stay as they were).
#[test]
fn another_users_registry_is_an_error() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("another_users_registry_is_an_error", "not root: chown needs root");
    }
    let g = Name::new("foreign");
    let path = format!("/dev/shm/discardable-group-{}", g.0);
    std::fs::write(&path, b"someone else's").unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let err = Manager::builder().limit(1 << 20).group(&g.0).start().unwrap_err();
    assert!(
        matches!(&err, discardable::Error::ForeignGroupRegistry { uid: 65534, path: p } if p.to_str() == Some(path.as_str())),
        "{err:?}"
    );
    assert!(err.to_string().contains("belongs to user 65534"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    assert!(matches!(group_members(&g.0), Err(discardable::Error::ForeignGroupRegistry { .. })));
}

/// Bad names and a zero weight are typed errors from `start()`.
#[test]
fn bad_names_and_weights_are_errors() {
    for bad in ["", "a/b", "../x", "sp ace", &"n".repeat(201)] {
        let err = Manager::builder().limit(1 << 20).group(bad).start().unwrap_err();
        assert!(matches!(&err, discardable::Error::InvalidGroupName(n) if n == bad), "{bad:?}: {err:?}");
    }
    let err = Manager::builder().limit(1 << 20).group("ok-name").weight(0).start().unwrap_err();
    assert!(matches!(err, discardable::Error::ZeroWeight), "{err:?}");
}

/// A registry corrupted under a running member (another version written
/// over its header, as a hostile process of the same user could) is
/// counted in `Stats::group_faults`; the member keeps working alone (its
/// own limit is still enforced) and recovers once the header is back.
#[test]
fn a_corrupted_registry_is_counted_and_the_member_acts_alone() {
    let g = Name::new("hostile");
    let path = format!("/dev/shm/discardable-group-{}", g.0);
    let limit = 4 << 20;
    let m = Manager::builder().limit(limit).group(&g.0).start().unwrap();
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what}: {:?}", m.stats());
            thread::sleep(Duration::from_millis(10));
        }
    };
    wait("joined", &|| group_members(&g.0).is_ok_and(|v| v.len() == 1));
    assert_eq!(m.stats().group_faults, 0);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&7u64.to_ne_bytes()); // version 7
    std::fs::write(&path, &bad).unwrap();
    wait("fault counted", &|| m.stats().group_faults > 0);
    let err = group_members(&g.0).unwrap_err();
    assert!(err.to_string().contains("version 7"), "{err}");
    // Still enforcing its own limit, alone.
    let handles: Vec<Discardable<[u8]>> = (0..16).map(|_| Discardable::zeroed_in(1 << 20, &m)).collect();
    wait("limit enforced", &|| m.stats().discardable_bytes <= limit);
    assert!(handles.iter().any(Discardable::is_discarded));
    // The header back (with our old claim word, so the member first finds
    // its slot lost and claims another): the faults stop.
    std::fs::write(&path, &good).unwrap();
    wait("readable again", &|| group_members(&g.0).is_ok());
    // Two passes (a heartbeat each at the most): the loss is counted.
    let passes = m.stats().passes;
    wait("two passes", &|| m.stats().passes >= passes + 2);
    let (faults, passes) = (m.stats().group_faults, m.stats().passes);
    wait("two more passes", &|| m.stats().passes >= passes + 2);
    assert_eq!(m.stats().group_faults, faults, "faults went on after the header was repaired");
}

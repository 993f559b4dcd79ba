//! `discardable-top`'s live view (no `--once`) against a real registry:
//! managers of this process join a group; the binary redraws every 100 ms
//! while its frames are read from a pipe. The first frame must show the
//! member that is there, and later frames what changed after it was drawn:
//! its held bytes growing, a second member joining, then leaving. The
//! binary is then killed (it would stop on its own after `--frames`, a cap
//! so that a failed test leaves no process behind), and a run with
//! `--frames 3` must draw exactly three frames and exit by itself.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use discardable::{group_members, Discardable, Manager};

/// What starts every frame: clear the screen, home the cursor.
const CLEAR: &str = "\x1b[2J\x1b[H";
/// How long any one expected frame may take to come.
const FRAME_WAIT: Duration = Duration::from_secs(10);

fn top() -> Command {
    Command::new(env!("CARGO_BIN_EXE_discardable-top"))
}

/// The live binary, killed when dropped (also when an assertion fails).
struct Live {
    child: Child,
    frames: Receiver<String>,
    /// Frames received so far.
    seen: usize,
}

impl Live {
    fn spawn(args: &[&str]) -> Live {
        let mut child = top().args(args).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            // A frame is complete when the next one starts (or at the end).
            let mut text = String::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = out.read(&mut buf).unwrap_or(0);
                text.push_str(std::str::from_utf8(&buf[..n]).expect("ASCII output"));
                while let Some(next) = text.get(1..).and_then(|t| t.find(CLEAR)).map(|i| i + 1) {
                    let rest = text.split_off(next);
                    if tx.send(std::mem::replace(&mut text, rest)).is_err() {
                        return;
                    }
                }
                if n == 0 {
                    if !text.is_empty() {
                        let _ = tx.send(text);
                    }
                    return;
                }
            }
        });
        Live { child, frames, seen: 0 }
    }

    /// The next frame, without its clear sequence.
    fn next(&mut self) -> String {
        let frame = self.frames.recv_timeout(FRAME_WAIT).expect("a frame");
        self.seen += 1;
        frame.strip_prefix(CLEAR).unwrap_or_else(|| panic!("frame {} does not clear: {frame:?}", self.seen)).to_owned()
    }

    /// Reads frames until one satisfies `want`; returns it and its number
    /// (1 for the first frame ever received).
    fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> (String, usize) {
        let deadline = Instant::now() + FRAME_WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            last = self.next();
            if want(&last) {
                return (last, self.seen);
            }
        }
        panic!("no frame showed {what} within {FRAME_WAIT:?}; the last one:\n{last}");
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The frame's header line for group `name` and the (weight, held MiB)
/// of each row of this process, sorted.
fn ours(frame: &str, name: &str) -> (String, Vec<(String, String)>) {
    let header = frame.lines().find(|l| l.starts_with(&format!("group {name}: "))).unwrap_or("").to_owned();
    let pid = std::process::id().to_string();
    let mut rows: Vec<(String, String)> = frame
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() == 8 && c[0] == pid)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect();
    rows.sort();
    (header, rows)
}

fn row(weight: &str, held: &str) -> (String, String) {
    (weight.to_owned(), held.to_owned())
}

/// `count` MiB of discardable memory in `m`.
fn hold(m: &Manager, count: usize) -> Vec<Discardable<[u8]>> {
    (0..count).map(|_| Discardable::zeroed_in(1 << 20, m)).collect()
}

/// The group's registry file, removed when the test ends (also when it
/// fails).
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn live_view_redraws_what_changes() {
    let name = format!("top-live-{}", std::process::id());
    let _registry = RemoveOnDrop(format!("/dev/shm/discardable-group-{name}"));
    let m = Manager::builder().limit(64 << 20).group(&name).weight(2).start().unwrap();
    let mut held = hold(&m, 4);
    // The first frame is drawn after the 4 MiB are published.
    let deadline = Instant::now() + FRAME_WAIT;
    while !group_members(&name).is_ok_and(|v| v.len() == 1 && v[0].held == 4 << 20) {
        assert!(Instant::now() < deadline, "never published: {:?}", group_members(&name));
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let mut live = Live::spawn(&["--interval", "100", "--frames", "600", &name]);

    let first = live.next();
    assert_eq!(
        ours(&first, &name),
        (format!("group {name}: 1 members, 4.0 MiB held"), vec![row("2", "4.0")]),
        "the first frame:\n{first}"
    );

    // Changes after the first frame: our member grows to 8 MiB, and a
    // second one (weight 5, 1 MiB) joins.
    held.extend(hold(&m, 4));
    let joiner = Manager::builder().limit(64 << 20).group(&name).weight(5).start().unwrap();
    let joiner_held = hold(&joiner, 1);
    let want = (format!("group {name}: 2 members, 9.0 MiB held"), vec![row("2", "8.0"), row("5", "1.0")]);
    let (_, joined) = live.until("the growth and the joiner", |f| ours(f, &name) == want);

    // The joiner leaves (its slot is given up within a heartbeat).
    drop(joiner_held);
    drop(joiner);
    let want = (format!("group {name}: 1 members, 8.0 MiB held"), vec![row("2", "8.0")]);
    let (_, left) = live.until("the leaver gone", |f| ours(f, &name) == want);
    assert!(1 < joined && joined < left, "frames {joined} and {left}");
    eprintln!("live view: joined in frame {joined}, left in frame {left}, {:.2?}", started.elapsed());
    drop(live);

    // `--frames 3`: three frames, each with our row, then a clean exit.
    let out = top().args(["--interval", "50", "--frames", "3", &name]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let frames: Vec<&str> = text.split(CLEAR).collect();
    assert_eq!(frames.len(), 4, "three frames, each after a clear: {text:?}");
    assert!(frames[0].is_empty(), "{text:?}");
    for f in &frames[1..] {
        assert_eq!(ours(f, &name), want, "{f}");
    }

    drop(held);
    drop(m);
}

//! The manager thread: spawning it (with a fresh look at the pressure
//! signals), its timers and scheduling priority, and its loop ([`run`],
//! [`step`]), which catches a panic of any iteration and carries on (the
//! parent module's docs, "Panics").

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_epoch::LocalHandle;

use super::{sink, Core, ThreadPriority};
use crate::fork;
use crate::handle::arena::{Arena, Wake};
use crate::pressure::Pressure;
use crate::sync::Ordering::Relaxed;

/// First retry delay while pins keep the arena over its limit.
const RETRY_MIN: Duration = Duration::from_millis(5);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How soon the thread retries discard notices a sink could not apply.
const SINK_RETRY: Duration = Duration::from_millis(10);

/// Spawns the manager thread for `arena` (with a fresh look at the
/// pressure signals).
pub(super) fn spawn(arena: &Arc<Arena>, core: &Arc<Core>) -> Result<(), crate::Error> {
    let pressure = discover(core);
    let weak = Arc::downgrade(arena);
    let thread_core = Arc::clone(core);
    let wake = Arc::clone(&arena.wake);
    std::thread::Builder::new()
        .name("discardable-manager".into())
        .spawn(move || run(weak, thread_core, wake, pressure))
        .map(drop)
        .map_err(crate::Error::Spawn)
}

/// Discovers the pressure signals afresh and publishes their reports.
fn discover(core: &Core) -> Pressure {
    let pressure = Pressure::discover(core.pressure.clone());
    *core.reports.lock() = pressure.reports();
    pressure
}

/// The manager thread's timers.
#[derive(Debug, Clone, Copy)]
struct Timers {
    /// Back-off while pins keep the arena over its limit.
    retry: Option<Duration>,
    /// What the pressure layer (and lazy mode) asks for.
    poll: Option<Duration>,
}

impl Default for Timers {
    /// As at spawn: a first pass at once.
    fn default() -> Self {
        Timers { retry: None, poll: Some(Duration::ZERO) }
    }
}

/// Asks the OS to schedule the calling thread with `wanted`, falling back
/// a step at a time where it refuses; returns what the thread got.
fn apply_priority(wanted: ThreadPriority) -> ThreadPriority {
    match wanted {
        ThreadPriority::Realtime if crate::os::set_realtime() => ThreadPriority::Realtime,
        ThreadPriority::Realtime | ThreadPriority::Raised if crate::os::raise_nice() => ThreadPriority::Raised,
        _ => ThreadPriority::Normal,
    }
}

/// The manager thread's body: [`step`] until the arena or the manager is
/// gone, catching a panic of any step (`manager` module docs, "Panics").
pub(super) fn run(arena: Weak<Arena>, core: Arc<Core>, wake: Arc<Wake>, pressure: Pressure) {
    crate::alloc::exempt_from_direct_reclaim();
    // Reaction time under a spike is mostly waiting for a CPU: ask for a
    // better one where allowed.
    let got = apply_priority(core.priority);
    core.thread_priority.store(1 + got as u8, Relaxed);
    let local = core.collector.register();
    let mut pressure = Some(pressure);
    let mut timers = Timers::default();
    let mut backoff = RETRY_MIN;
    loop {
        // AssertUnwindSafe: after a panic, everything the step could have
        // left half-updated is rebuilt (`pressure`, `timers`) or is sound
        // to reuse (the table, see the `manager` module docs; `local`,
        // whose epoch guard the unwind dropped).
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let pressure = pressure.get_or_insert_with(|| discover(&core));
            step(&arena, &core, &wake, &local, pressure, &mut timers)
        }));
        match outcome {
            Ok(ControlFlow::Break(())) => break,
            Ok(ControlFlow::Continue(())) => backoff = RETRY_MIN,
            Err(_) => {
                core.manager_panics.fetch_add(1, Relaxed);
                crate::alloc::direct_reclaim_done();
                pressure = None;
                timers = Timers::default();
                // Bounds the rate of a panic that recurs on every pass.
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
                // The aborted pass's work is still to do, and its timers
                // are gone: pass again now rather than at the next wake-up.
                wake.request();
            }
        }
    }
}

/// One iteration of the manager thread: wait for a wake-up, a kernel
/// notification or a timer; sample; reclaim. `Break` when the thread must
/// exit.
fn step(
    arena: &Weak<Arena>,
    core: &Core,
    wake: &Wake,
    local: &LocalHandle,
    pressure: &mut Pressure,
    timers: &mut Timers,
) -> ControlFlow<()> {
    let timeout = match (timers.retry, timers.poll) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // A pass woken only by the arena's own wake-up may reuse a recent file
    // sample; a timer (or a failed wait) asks for a fresh one, and a kernel
    // notification forces one inside the pressure layer.
    let fresh = match pressure.wait(timeout, wake.fd()) {
        Ok(ready) => !ready.extra,
        Err(_) => {
            std::thread::sleep(RETRY_MIN); // poll failed (EINVAL/ENOMEM): degrade to a slow loop
            true
        }
    };
    if wake.is_shutdown() {
        return ControlFlow::Break(());
    }
    wake.take();
    let (reading, unoffered, over) = {
        let Some(arena) = arena.upgrade() else { return ControlFlow::Break(()) };
        let _gate = fork::enter();
        let (reading, unoffered) = core.run_once(&arena, local, pressure, fresh);
        (reading, unoffered, core.note_limit(&arena) > 0)
    };
    crate::alloc::direct_reclaim_done();
    timers.retry = over.then(|| timers.retry.map_or(RETRY_MIN, |r| (r * 2).min(RETRY_MAX)));
    timers.poll = pressure.poll_interval(&reading);
    // A group member renews its heartbeat at least once a second.
    if core.in_group() {
        let beat = Duration::from_millis(crate::group::HEARTBEAT_MS);
        timers.poll = Some(timers.poll.map_or(beat, |p| p.min(beat)));
    }
    // Discard notices a sink could not apply yet (a shard was busy): retry
    // within 10 ms, so dead keys leave even if the cache gets no calls.
    if core.sinks_pending.load(Relaxed) {
        let left = sink::flush(&core.sinks);
        core.sinks_pending.store(left, Relaxed);
        if left {
            timers.poll = Some(timers.poll.map_or(SINK_RETRY, |p| p.min(SINK_RETRY)));
        }
    }
    // Lazy mode: while spans wait to be offered, scan every half delay,
    // so each is offered within the delay of its last unpin.
    if let (Some(delay), true) = (core.lazy_delay, unoffered > 0) {
        let tick = delay / 2;
        timers.poll = Some(timers.poll.map_or(tick, |p| p.min(tick)));
    }
    *core.reports.lock() = pressure.reports();
    core.passes.fetch_add(1, Relaxed);
    ControlFlow::Continue(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{Discardable, Manager};

    /// A panic mid-pass on the manager thread, with the table lock, an
    /// epoch guard and the fork gate held, is counted, and the thread goes
    /// on enforcing the limit (and releases the lock: `reclaim` works).
    #[test]
    fn manager_thread_survives_a_panic_mid_pass() {
        let page = crate::os::page_size();
        let limit = 64 * page;
        let m = Manager::builder().limit(limit).start().unwrap();
        m.__panic_next_passes(1);
        let within_limit = |m: &Manager| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while m.stats().discardable_bytes > limit {
                assert!(Instant::now() < deadline, "limit not enforced after a panic: {:?}", m.stats());
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // Born pinned, so the constructors cannot make room themselves: the
        // manager thread has to, and its first pass with work panics.
        let fresh: Vec<_> = (0..32).map(|_| Discardable::fill_in(16 * page, &m, |_| ()).unwrap()).collect();
        let first: Vec<Discardable<[u8]>> = fresh.into_iter().map(crate::Fresh::into_handle).collect();
        within_limit(&m);
        assert_eq!(m.stats().manager_panics, 1, "{:?}", m.stats());
        assert!(first.iter().any(Discardable::is_discarded));
        // Later wake-ups are still answered, by the same loop.
        let second: Vec<Discardable<[u8]>> = (0..32).map(|_| Discardable::zeroed_in(16 * page, &m)).collect();
        within_limit(&m);
        assert!(second.iter().any(Discardable::is_discarded));
        // The unwind released the table lock.
        let kept = m.stats().discardable_bytes;
        assert_eq!(m.reclaim(usize::MAX), kept);
        assert_eq!(m.stats().manager_panics, 1);
    }
}

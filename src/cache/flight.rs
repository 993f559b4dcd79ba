//! Single flight: one computation per key at a time.
//!
//! Owns: the [`Flight`] a leader publishes as its key's placeholder, and how
//! waiters wait on it: threads block on a condition variable, futures
//! register a waker and return `Pending` (no executor is assumed). A flight
//! ends exactly once, when its leader's ticket is dropped, whatever the
//! outcome (value stored, closure error, panic, future dropped); waiters
//! then look the key up again, and one of them leads the next flight if the
//! value is not there.
//!
//! Must never: run user code or touch a shard while holding its own lock.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

/// The placeholder of a computation in progress.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    ended: bool,
    wakers: Vec<Waker>,
}

impl Flight {
    /// Ends the flight: wakes every waiting thread and future. Idempotent.
    pub(crate) fn end(&self) {
        let wakers = {
            let mut state = self.state.lock();
            state.ended = true;
            core::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Blocks the calling thread until the flight ended.
    pub(crate) fn wait(&self) {
        let mut state = self.state.lock();
        while !state.ended {
            self.done.wait(&mut state);
        }
    }

    /// A future that completes when the flight ended.
    pub(crate) fn ended(&self) -> Ended<'_> {
        Ended { flight: self }
    }
}

/// See [`Flight::ended`].
#[derive(Debug)]
pub(crate) struct Ended<'a> {
    flight: &'a Flight,
}

impl Future for Ended<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.flight.state.lock();
        if state.ended {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

//! Runs one model under loom and reports how much it explored.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Checks `model` under loom with at most `bound` preemptions per execution,
/// unless `LOOM_MAX_PREEMPTIONS` is set (it then wins, as in plain
/// `loom::model`). Prints the number of executions explored and the time
/// taken on stderr (shown with `--nocapture`).
///
/// The counter is a `std` atomic on purpose: loom must not see it.
pub fn check<F>(name: &str, bound: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&executions);
    let start = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, Relaxed);
        model();
    });
    eprintln!(
        "loom model `{name}`: {} executions, preemption bound {:?}, {:.2?}",
        executions.load(Relaxed),
        builder.preemption_bound,
        start.elapsed()
    );
}

/// Spawns a model thread that runs `f` on its own clone of `shared`.
pub fn spawn<T, R, F>(shared: &loom::sync::Arc<T>, f: F) -> loom::thread::JoinHandle<R>
where
    T: 'static,
    loom::sync::Arc<T>: Send,
    R: Send + 'static,
    F: FnOnce(loom::sync::Arc<T>) -> R + Send + 'static,
{
    let shared = loom::sync::Arc::clone(shared);
    loom::thread::spawn(move || f(shared))
}

/// Outcomes a model must reach, each in at least one execution, so that a
/// model in which nothing raced cannot pass. Plain `std` atomics: loom must
/// not see them.
#[derive(Debug)]
pub struct Outcomes {
    names: &'static [&'static str],
    seen: Vec<std::sync::atomic::AtomicBool>,
}

impl Outcomes {
    /// Outcomes named `names`, none seen yet.
    pub fn new(names: &'static [&'static str]) -> Arc<Self> {
        Arc::new(Self { names, seen: names.iter().map(|_| Default::default()).collect() })
    }

    /// Records that this execution reached outcome `i`.
    pub fn saw(&self, i: usize) {
        self.seen[i].store(true, Relaxed);
    }

    /// Panics unless every outcome was reached (call after the model).
    pub fn assert_all_seen(&self) {
        for (name, seen) in self.names.iter().zip(&self.seen) {
            assert!(seen.load(Relaxed), "no execution reached the outcome `{name}`: the model checks too little");
        }
    }
}

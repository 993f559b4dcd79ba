//! Placeholder replaced by the pin benchmark.
fn main() {}

//! The allocator workloads on `discardable::DiscardAlloc`.

#[global_allocator]
static A: discardable::DiscardAlloc = discardable::DiscardAlloc::new();

fn stats() -> String {
    let s = discardable::DiscardAlloc::stats();
    format!("mapped={} in_use={} retained={}", s.mapped, s.in_use, s.retained)
}

fn main() {
    alloc_bench::main(alloc_bench::Peer { name: "discardable", stats: Some(stats) });
}

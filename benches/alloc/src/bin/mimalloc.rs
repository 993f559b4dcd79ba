//! The allocator workloads on mimalloc.

#[global_allocator]
static A: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    alloc_bench::main(alloc_bench::Peer { name: "mimalloc", stats: None });
}

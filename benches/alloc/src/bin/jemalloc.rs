//! The allocator workloads on jemalloc (`tikv-jemallocator`).

#[global_allocator]
static A: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    alloc_bench::main(alloc_bench::Peer { name: "jemalloc", stats: None });
}

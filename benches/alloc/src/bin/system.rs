//! The allocator workloads on the system allocator (glibc malloc).

#[global_allocator]
static A: std::alloc::System = std::alloc::System;

fn main() {
    alloc_bench::main(alloc_bench::Peer { name: "system", stats: None });
}

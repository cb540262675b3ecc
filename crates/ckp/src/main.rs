//! The `ckp` binary: parse the command line and hand over to the library.

fn main() -> std::process::ExitCode {
    ckp::run(<ckp::Cli as clap::Parser>::parse())
}

/// mimalloc: less CPU in allocation than glibc's malloc, and memory freed after a burst goes back to the system
/// (glibc kept ~170 MiB after 128 concurrent runs had finished). Transparent huge pages off: they would raise the
/// idle RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

//! The `ckp` binary: parse the command line and hand over to the library.

fn main() -> std::process::ExitCode {
    ckp::run(<ckp::Cli as clap::Parser>::parse())
}

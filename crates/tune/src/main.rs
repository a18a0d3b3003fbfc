//! `fer-tune`: the stage binary (see the crate doc); errors print as one chain and exit 2.

// mimalloc keeps freed activation buffers for the next training step or batch; glibc's
// malloc hands them back to the OS and faults them in again (about 12% of a CNN step).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fer_ops::alloc::keep_freed_memory();
    let cli = fer_tune::Cli::parse_for::<fer_tune::Params>();
    if cli.args.print_upstream {
        // What a worker elsewhere takes as --upstream (fer_tune::upstream).
        return fer_core::cli::exit_on_error(fer_tune::upstream::print_main(&cli));
    }
    if cli.args.worker {
        // A worker of a shared study: no lock, no outputs (fer_tune::workers).
        return fer_tune::workers::worker_main(&cli);
    }
    fer_core::cli::run_cli::<fer_tune::Params>(&cli)
}

//! `fer-train_cnn`: parse args, load the pipeline file, run the stage; errors exit 2.
use clap::Parser;

// mimalloc keeps freed activation buffers for the next training step or batch; glibc's
// malloc hands them back to the OS and faults them in again (about 12% of a CNN step).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fer_ops::alloc::keep_freed_memory();
    let cli = fer_train_cnn::Cli::parse();
    let result = cli
        .common
        .load_pipeline()
        .map_err(Into::into)
        .and_then(|pipeline| {
            fer_train_cnn::run(&fer_train_cnn::Params::from_pipeline(&pipeline, &cli)?)
        });
    fer_core::cli::finish(&cli.common, fer_train_cnn::STAGE, result)
}

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
            let p = fer_train_cnn::Params::from_pipeline(&pipeline, &cli)?;
            if cli.common.print_params {
                let params = fer_train_cnn::signature_params(&p)?;
                fer_core::cli::print_params(&pipeline.name, fer_train_cnn::STAGE, &params);
                return Ok(());
            }
            fer_train_cnn::run(&p).map(|_| ())
        });
    fer_core::cli::finish(&cli.common, fer_train_cnn::STAGE, result)
}

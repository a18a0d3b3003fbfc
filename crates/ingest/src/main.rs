//! `fer-ingest`: parse args, load the pipeline file, run the stage; errors exit 2.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fer_ingest::Cli::parse();
    let result = cli
        .common
        .load_pipeline()
        .map_err(Into::into)
        .and_then(|pipeline| {
            let p = fer_ingest::Params::from_pipeline(&pipeline, &cli)?;
            if cli.common.print_params {
                let params = fer_ingest::signature_params(&p)?;
                fer_core::cli::print_params(&pipeline.name, fer_ingest::STAGE, &params);
                return Ok(());
            }
            fer_ingest::run(&p).map(|_| ())
        });
    fer_core::cli::finish(&cli.common, fer_ingest::STAGE, result)
}

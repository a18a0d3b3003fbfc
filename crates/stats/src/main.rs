//! `fer-stats`: parse args, load the pipeline file, run the stage; errors exit 2.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fer_stats::Cli::parse();
    let result = cli
        .common
        .load_pipeline()
        .map_err(Into::into)
        .and_then(|pipeline| {
            let p = fer_stats::Params::from_pipeline(&pipeline, &cli)?;
            if cli.common.print_params {
                let params = fer_stats::signature_params(&p)?;
                fer_core::cli::print_params(&pipeline.name, fer_stats::STAGE, &params);
                return Ok(());
            }
            fer_stats::run(&p).map(|_| ())
        });
    fer_core::cli::finish(&cli.common, fer_stats::STAGE, result)
}

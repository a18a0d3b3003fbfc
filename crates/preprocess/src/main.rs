//! `fer-preprocess`: parse args, load the pipeline file, run the stage; errors exit 2.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fer_preprocess::Cli::parse();
    let result = cli
        .common
        .load_pipeline()
        .map_err(Into::into)
        .and_then(|pipeline| {
            let p = fer_preprocess::Params::from_pipeline(&pipeline, &cli)?;
            if cli.common.print_params {
                let params = fer_preprocess::signature_params(&p)?;
                fer_core::cli::print_params(&pipeline.name, fer_preprocess::STAGE, &params);
                return Ok(());
            }
            fer_preprocess::run(&p).map(|_| ())
        });
    fer_core::cli::finish(&cli.common, fer_preprocess::STAGE, result)
}

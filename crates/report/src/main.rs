//! `fer-report`: parse args, load the pipeline file, run the stage (or `diff`); errors exit 2.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fer_report::Cli::parse();
    if let Some(fer_report::Command::Diff { a, b, all, timings }) = &cli.command {
        let result = fer_report::diff::diff(a, b, &cli.common.artifacts, *all, *timings)
            .map(|text| print!("{text}"));
        return fer_core::cli::exit_on_error(result);
    }
    let result = cli
        .common
        .load_pipeline()
        .map_err(Into::into)
        .and_then(|pipeline| {
            let p = fer_report::Params::from_pipeline(&pipeline, &cli)?;
            if cli.common.print_params {
                let params = fer_report::signature_params(&p)?;
                fer_core::cli::print_params(&pipeline.name, fer_report::STAGE, &params);
                return Ok(());
            }
            fer_report::run(&p).map(|_| ())
        });
    fer_core::cli::finish(&cli.common, fer_report::STAGE, result)
}

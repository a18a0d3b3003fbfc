//! `fer-train-svm`: parse args, load the pipeline file, run the stage; errors exit 2.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fer_train_svm::Cli::parse();
    let result = cli
        .common
        .load_pipeline()
        .map_err(Into::into)
        .and_then(|pipeline| {
            let p = fer_train_svm::Params::from_pipeline(&pipeline, &cli)?;
            if cli.common.print_params {
                let params = fer_train_svm::signature_params(&p)?;
                fer_core::cli::print_params(&pipeline.name, fer_train_svm::STAGE, &params);
                return Ok(());
            }
            fer_train_svm::run(&p).map(|_| ())
        });
    fer_core::cli::finish(&cli.common, fer_train_svm::STAGE, result)
}

//! `fer-report`: the stage binary (see the crate doc), or `fer-report diff A B`; errors print
//! as one chain and exit 2.

fn main() -> std::process::ExitCode {
    let cli = fer_report::Cli::parse_for::<fer_report::Params>();
    if let Some(fer_report::Command::Diff { a, b, all, timings }) = &cli.args.command {
        let result = fer_report::diff::diff(a, b, &cli.common.artifacts, *all, *timings)
            .map(|text| print!("{text}"));
        return fer_core::cli::exit_on_error(result);
    }
    fer_core::cli::run_cli::<fer_report::Params>(&cli)
}

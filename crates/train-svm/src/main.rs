//! `fer-train-svm`: the stage binary (see the crate doc); errors print as one chain and exit 2.

fn main() -> std::process::ExitCode {
    fer_core::cli::main::<fer_train_svm::Params>()
}

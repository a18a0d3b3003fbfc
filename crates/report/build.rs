fn main() {
    // Every stage the report may read (load::UPSTREAM).
    fer_codeversion::emit_with_upstream(&[
        "ingest",
        "stats",
        "preprocess",
        "augment",
        "train_svm",
        "train_cnn",
        "tune",
    ]);
}

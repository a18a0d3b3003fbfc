fn main() {
    fer_codeversion::emit(&["augment", "train-cnn", "ops"]);
}

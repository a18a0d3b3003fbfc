fn main() {
    fer_codeversion::emit_with_upstream(&["preprocess"]);
}

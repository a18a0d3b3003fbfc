fn main() {
    fer_codeversion::emit(&["augment", "ops"]);
}

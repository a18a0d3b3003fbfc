fn main() {
    fer_codeversion::emit();
}

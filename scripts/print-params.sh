#!/usr/bin/env bash
# The resolved params of every stage of every pipeline file, one JSON line each (what each
# stage's signature hashes): `scripts/print-params.sh [BIN]` (BIN: a folder holding
# release/fer-*; default target). Diff two outputs to show a change resolves the same params.
set -uo pipefail
bin=${1:-${CARGO_TARGET_DIR:-target}}/release
cd "$(dirname "$0")/.."
export FER2013_DIR=${FER2013_DIR:-../shared/data/fer2013}
# The stages, from the stage graph (crates/graph, through mk/stages.mk).
stages=$(make -s --no-print-directory print-stages)
for f in pipelines/*.toml; do
  p=$(basename "$f" .toml)
  for s in $stages; do
    # An error is a result too: it is printed in place of the params.
    "$bin/fer-$s" --pipeline "$p" --print-params 2>&1 || true
  done
done

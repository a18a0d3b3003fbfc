#!/usr/bin/env bash
# Random search against successive halving (ASHA) with the same wall-clock budget.
# Usage: scripts/compare-tune.sh [pipeline] [strategy...]   (default: seed, random)
# Runs `fer-tune` on a copy of the pipeline whose [tune] strategy is replaced, in a scratch
# artifacts folder that reuses artifacts/<pipeline>/preprocess (and train_cnn, whose base model
# is trial 0 under reuse_base), and prints each run's summary.
# The pipeline's own run (make tune) gives the other strategy's numbers. TIME_LIMIT=12m
# overrides [tune] time_limit (e.g. to run two strategies side by side, each on one core).
set -euo pipefail
pipeline=${1:-seed}
shift || true
strategies=${*:-random}
bin=${CARGO_TARGET_DIR:-target}/release/fer-tune
[ -x "$bin" ] || cargo build --release --quiet -p fer-tune
[ -f "artifacts/$pipeline/preprocess/manifest.json" ] || { echo "run: make preprocess PIPELINE=$pipeline" >&2; exit 2; }
for s in $strategies; do
  scratch=$(mktemp -d /tmp/fer-tune-compare.XXXXXX)
  mkdir -p "$scratch/artifacts/$pipeline" "$scratch/pipelines"
  cp -r "artifacts/$pipeline/preprocess" "$scratch/artifacts/$pipeline/"
  if [ -d "artifacts/$pipeline/train_cnn" ]; then cp -r "artifacts/$pipeline/train_cnn" "$scratch/artifacts/$pipeline/"; fi
  sed -E "/^\[tune\]/,/^\[/ s/^strategy = .*/strategy = \"$s\"/" "pipelines/$pipeline.toml" \
    | if [ -n "${TIME_LIMIT:-}" ]; then
        sed -E "/^\[tune\]/,/^\[/ s/^time_limit = .*/time_limit = \"$TIME_LIMIT\"/"
      else cat; fi \
    > "$scratch/pipelines/$pipeline.toml"
  grep -q "^strategy = \"$s\"" "$scratch/pipelines/$pipeline.toml"
  "$bin" --pipeline "$scratch/pipelines/$pipeline.toml" --artifacts "$scratch/artifacts" --cache-dir off
  echo "== $s: $scratch/artifacts/$pipeline/tune/summary.json"
  cat "$scratch/artifacts/$pipeline/tune/summary.json"
done

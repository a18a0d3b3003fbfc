#!/usr/bin/env bash
# One prepared run for a GPU slot (issue 33): a Linux machine with one GPU, no network, about
# 15 minutes including start-up. It stops by itself inside GPU_RUN_LIMIT_S (default 690 s,
# 11.5 minutes), build included.
#   1. The `gpu` example: GPU_RUN_BIN (a binary built elsewhere and carried over, e.g.
#      target/gpu/release/examples/gpu from `make gpu-check`), else target/gpu's, else built
#      here (`cargo build --release -p fer-train-cnn --features wgpu --example gpu`).
#   2. The adapter (name, graphics API, kind). It stops at once, exit 3, when the adapter runs
#      on the CPU (llvmpipe/lavapipe), unless GPU_RUN_SMOKE=1.
#   3. Images/s of 20 training batches (after a warm-up) and of an inference pass for seed-base,
#      the study's 24-million-parameter seed-tuned and fer-vgg; then seed-gpu's models trained
#      on the seed data (artifacts/seed/preprocess: run `make preprocess PIPELINE=seed` first,
#      or carry that folder) for as many epochs as the time left allows, each scored on the test
#      split. One table (stdout and artifacts/gpu-run/table.md, JSON beside it).
# GPU_RUN_SMOKE=1: a tiny setting that lets a CPU adapter through (lavapipe), to know the script
# works before a slot comes: seed-base and fer-small, 2 batches each, then smoke-gpu's models on
# its data (artifacts/smoke-gpu/preprocess, made here when missing), 120 s in all.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
limit=${GPU_RUN_LIMIT_S:-690}
left() { echo $((limit - (SECONDS - start))); }
out=artifacts/gpu-run
mkdir -p "$out"
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d /tmp/fer-xdg.XXXXXX)
  chmod 700 "$XDG_RUNTIME_DIR"
  export XDG_RUNTIME_DIR
fi

gpu=${GPU_RUN_BIN:-target/gpu/release/examples/gpu}
if [ ! -x "$gpu" ]; then
  echo "gpu-run: building the gpu example (at most $(left) s)"
  [ "$(left)" -gt 60 ] || { echo "gpu-run: stopped: no time left to build" >&2; exit 1; }
  CARGO_TARGET_DIR=target/gpu timeout "$(left)" \
    cargo build --release --quiet -p fer-train-cnn --features wgpu --example gpu
  gpu=target/gpu/release/examples/gpu
fi
echo "gpu-run: $gpu ($(($(left))) s left)"

smoke=${GPU_RUN_SMOKE:-0}
if [ "$smoke" = 1 ]; then
  timeout 120 "$gpu" info | tee "$out/adapter.txt"
else
  rc=0
  timeout 120 "$gpu" info --require-gpu | tee "$out/adapter.txt" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "gpu-run: stopped: no GPU adapter (exit $rc; GPU_RUN_SMOKE=1 runs on a CPU one)" >&2
    exit 3
  fi
fi

if [ "$smoke" = 1 ]; then
  if [ ! -f artifacts/smoke-gpu/preprocess/train.safetensors ]; then
    # The drawn faces need no download; CARGO=true uses binaries already built (make gpu-check
    # builds them into target/gpu), and the stages up to preprocess do not use the GPU.
    timeout "$(left)" make --no-print-directory preprocess PIPELINE=smoke-gpu CARGO=true \
      CARGO_TARGET_DIR=target/gpu > "$out/preprocess.log" 2>&1 \
      || echo "gpu-run: smoke-gpu's preprocess did not run (see $out/preprocess.log): no epochs on data"
  fi
  args=(--models seed-base,fer-small --batches 2 --pipeline smoke-gpu
        --data artifacts/smoke-gpu/preprocess --seconds 120)
else
  # The speed rows, then the epochs in what they leave; a minute is kept for scoring the test
  # split and the table.
  args=(--models seed-base,seed-tuned,fer-vgg --batches 20 --pipeline seed-gpu
        --data artifacts/seed/preprocess --seconds "$(($(left) - 60))")
fi
echo "gpu-run: ${args[*]} ($(left) s left)"
if [ "$(left)" -lt 60 ]; then
  echo "gpu-run: stopped: $(left) s left of $limit, too little for a run" >&2
  exit 1
fi
rc=0
timeout -s INT "$(left)" "$gpu" run "${args[@]}" --json "$out/run.json" | tee "$out/run.txt" || rc=$?
grep -E '^(\||device:)' "$out/run.txt" > "$out/table.md" || true
if [ "$rc" -ne 0 ]; then
  echo "gpu-run: the run ended with exit $rc after $((SECONDS - start)) s" >&2
  exit "$rc"
fi
echo "gpu-run: done in $((SECONDS - start)) s; the table is in $out/table.md"

#!/usr/bin/env bash
# `make bench-compare`: fer-bench's CNN rows beside PyTorch's, in one run, as a table.
#
# Rounds alternate (fer-bench, then PyTorch, ROUNDS times) so that both see the same machine
# state; each cell is the range over rounds, the ratio is fer-bench / PyTorch (higher is ours
# faster): the ratio of the medians, with the worst and best pairing of rounds. Columns:
#   fer-ops     fer-train-cnn as it trains and scores (fer-ops kernels, workers = auto)
#   im2col      the same with fer-ops' Winograd convolutions off (every convolution by im2col)
#   burn ops    the same with fer-ops switched off (burn's default conv and pool), for the
#               before/after of the custom kernels in the same run
#   pytorch     scripts/bench-torch.py: the same architectures, batch and thread count
# PyTorch is a benchmark reference only: TORCH_PYTHON (default python3) must import torch,
# otherwise its column says "n/a".
#
# Env: ROUNDS (2), THREADS (the machine's cores), TORCH_PYTHON, BIN (target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-$(nproc)}
TORCH_PYTHON=${TORCH_PYTHON:-python3}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for r in $(seq 1 "$ROUNDS"); do
    echo "round $r/$ROUNDS: fer-bench" >&2
    RAYON_NUM_THREADS=$THREADS "$BIN/fer-bench" --only compare --json >>"$out/fer.jsonl"
    echo "round $r/$ROUNDS: pytorch" >&2
    "$TORCH_PYTHON" scripts/bench-torch.py --threads "$THREADS" >>"$out/torch.jsonl" \
        2> >(grep -v -e Warning -e _conversion_method_template >&2) || true
done

python3 - "$out/fer.jsonl" "$out/torch.jsonl" "$THREADS" <<'EOF'
import json, sys
from collections import defaultdict

cells = defaultdict(list)  # (name, column) -> values
order = []
for path, col in [(sys.argv[1], None), (sys.argv[2], "pytorch")]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        column = col or row["impl"]
        if row["name"] not in order:
            order.append(row["name"])
        cells[(row["name"], column)].append(row["per_second"])

def rng(v):
    if not v:
        return "n/a"
    lo, hi = min(v), max(v)
    return f"{lo:,.0f}" if round(lo) == round(hi) else f"{lo:,.0f}-{hi:,.0f}"

def median(v):
    v = sorted(v)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2

def ratio(a, b):
    """Ratio of the medians, then the worst and best pairing of rounds in brackets."""
    if not a or not b:
        return "n/a"
    lo, hi = min(a) / max(b), max(a) / min(b)
    return f"{median(a) / median(b):.2f} ({lo:.2f}-{hi:.2f})"

head = ["row (images/s)", "fer-ops", "im2col", "burn ops", "pytorch", "fer-ops / pytorch",
        "fer-ops / im2col", "fer-ops / burn ops"]
rows = []
for name in order:
    a, i, b, t = (cells[(name, c)] for c in ("fer-ops", "im2col", "burn ops", "pytorch"))
    rows.append([name, rng(a), rng(i), rng(b), rng(t), ratio(a, t), ratio(a, i), ratio(a, b)])
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
print(f"CNN throughput on {sys.argv[3]} threads, images/s: range over rounds (batch 64 training, batch 32 inference);")
print("ratios: of the medians (worst-best pairing of rounds)")
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |")
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
EOF

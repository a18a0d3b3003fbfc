#!/usr/bin/env python3
"""PyTorch reference for `make bench-compare`: the same CNNs as fer-train-cnn, timed the same way.

A benchmark reference only, never a dependency of the pipeline: when torch is not importable
this prints a note on stderr and exits 0 with no rows.

Rows (one JSON object per line on stdout, the fields fer-bench's `--json` rows use):
  train <arch>: AdamW (lr 2e-3, weight decay 5e-4), cross-entropy with label smoothing 0.05,
      batch 64, random 1x48x48 inputs, images per second over --steps steps after 3 warm-up
      steps (dropout on, batch norm in training mode).
  infer <arch>: eval mode under torch.inference_mode, batch 32, images per second.

Architectures (crates/train-cnn/src/model.rs):
  fer-small: 4 x [conv 3x3 same, no bias, BN, ReLU] at widths 32-64-128-192, a 2x2 max pool
      after the first three, global average pool, dropout 0.3, linear 192 -> 2.
  fer-tiny: the same at widths 8-16-32-64, dropout 0.1.
  seed-base: the study's CNN: conv 3x3 valid 1->32, pool, 32->64, pool, 64->128, flatten
      (8192), dense 112, dense 112, dense 2, ReLUs.
"""

import argparse
import json
import sys
import time


def build(torch, arch):
    nn = torch.nn
    if arch == "seed-base":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(128 * 8 * 8, 112), nn.ReLU(),
            nn.Linear(112, 112), nn.ReLU(),
            nn.Linear(112, 2),
        )
    widths, dropout = {
        "fer-small": ([32, 64, 128, 192], 0.3),
        "fer-tiny": ([8, 16, 32, 64], 0.1),
    }[arch]
    layers, c_in = [], 1
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        if i + 1 < len(widths):
            layers.append(nn.MaxPool2d(2))
        c_in = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, 2)]
    return nn.Sequential(*layers)


def train_rate(torch, arch, steps, batch=64):
    model = build(torch, arch).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    x = torch.randn(batch, 1, 48, 48)
    y = torch.randint(0, 2, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def infer_rate(torch, arch, images, batch=32):
    model = build(torch, arch).eval()
    x = torch.randn(batch, 1, 48, 48)
    batches = max(1, images // batch)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        t = time.perf_counter()
        for _ in range(batches):
            model(x)
        return batches * batch / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40, help="timed training steps per row")
    ap.add_argument("--images", type=int, default=4096, help="images per inference row")
    ap.add_argument("--archs", default="fer-small,seed-base,fer-tiny")
    args = ap.parse_args()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 (any import failure means: no reference here)
        print(f"bench-torch: torch is not importable ({e}); no PyTorch rows", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for arch in args.archs.split(","):
        for kind, rate in [
            ("train", lambda: train_rate(torch, arch, args.steps)),
            ("infer", lambda: infer_rate(torch, arch, args.images)),
        ]:
            row = {
                "name": f"{kind} {arch}",
                "impl": f"pytorch {torch.__version__}",
                "threads": args.threads,
                "per_second": rate(),
            }
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The lever table of a pipeline with one [[train_cnn.models]] per lever (full7-levers): each
model's validation accuracy and macro F1 (the split that chose its epoch), the smallest
per-class F1 and precision there, the epochs it ran and kept, and its training minutes, read from
artifacts/<pipeline>/train_cnn/metrics.json. The first model is the baseline; the delta column is
each row's validation accuracy minus the baseline's, in points.

    scripts/lever-table.py full7-levers [--artifacts DIR] [--markdown]

Test figures are left out on purpose: the levers are chosen on validation, and the test split is
scored once, by the recipe the table chooses.
"""
import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline")
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    a = ap.parse_args()
    path = Path(a.artifacts) / a.pipeline / "train_cnn" / "metrics.json"
    try:
        by_model = json.loads(path.read_text())
    except FileNotFoundError:
        print(f"error: {path}: not found (run make train-cnn PIPELINE={a.pipeline})", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"error: {path}: not JSON: {e}", file=sys.stderr)
        return 2
    # metrics.json is keyed by name (sorted); the pipeline file's order is the table's.
    # A miniature run (`<name>-mini`) reads its pipeline file's order too.
    stem = a.pipeline.removesuffix("-mini")
    order = model_order(Path("pipelines") / f"{stem}.toml", list(by_model))
    head = ["lever", "val acc", "Δ pts", "val macro F1", "min class F1", "min precision",
            "epochs (kept)", "minutes"]
    rows = []
    base = None
    for name in order:
        m = by_model[name]
        v = m["metrics"]["val"]
        acc = v["accuracy"]
        base = acc if base is None else base
        worst_f1 = min(v["classes"], key=lambda c: c["f1"])
        worst_p = min(v["classes"], key=lambda c: c["precision"])
        rows.append([
            name,
            f"{100 * acc:.2f}%",
            f"{100 * (acc - base):+.2f}",
            f"{v['macro_avg']['f1']:.3f}",
            f"{worst_f1['f1']:.3f} ({worst_f1['name']})",
            f"{worst_p['precision']:.3f} ({worst_p['name']})",
            f"{m['epochs_run']} ({m['best_epoch']})",
            f"{m['train_seconds'] / 60:.1f}",
        ])
    n_val = by_model[order[0]]["metrics"]["val"]["n"] if order else 0
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
        for r in rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    print(f"\nvalidation: {n_val} images ({path})")
    return 0


def model_order(pfile: Path, names: list) -> list:
    """The models' names in the pipeline file's order (`name = "..."` lines of
    [[train_cnn.models]] tables); names the file does not list follow, sorted."""
    listed = []
    try:
        in_model = False
        for line in pfile.read_text().splitlines():
            s = line.strip()
            if s.startswith("["):
                in_model = s == "[[train_cnn.models]]"
            elif in_model and s.startswith("name") and "=" in s:
                listed.append(s.split("=", 1)[1].strip().strip('"'))
    except FileNotFoundError:
        pass
    known = [n for n in listed if n in names]
    return known + sorted(n for n in names if n not in known)


if __name__ == "__main__":
    sys.exit(main())

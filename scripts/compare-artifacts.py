#!/usr/bin/env python3
"""Compare two artifact folders table by table and key by key (the refactor check of issue 16).

    python3 scripts/compare-artifacts.py A B        # e.g. artifacts/ci /tmp/old/artifacts/ci

Every file must exist on both sides.
- Parquet: same schema, same row count, same values column by column.
- JSON: same keys and values, recursively.
- safetensors: the same header (tensor names, dtypes, shapes, metadata; compared as JSON, as
  burn writes the metadata keys in hash-map order) and the same tensor bytes.
- Text (HTML, Markdown, TOML, text): the same lines once timings are masked (TIMING_TEXT).
- Anything else (PNG): the same bytes.
Left out, and only these, because they differ between two runs of the same code: fields that
hold seconds, timestamps or code versions (TIMING_KEY), and the hashes that cover them
(`signature`, and the manifests' per-file `hash` and `bytes` and per-input `hash`, since every
file they describe is compared here itself). Needs pyarrow. Exit code 0: equal; 1: differences (listed).
"""
import json
import re
import struct
import sys
from pathlib import Path

import pyarrow.parquet as pq

# Keys (JSON) and columns (Parquet) that hold seconds, timestamps or code versions.
TIMING_KEY = re.compile(
    r"(^|_)(seconds|secs|elapsed|timestamp|started|finished|created|duration|wall)(_|$)"
    r"|per_s(ec)?$|per_second|^code_version$|^signature$|_s$"
)
# Within text outputs (report.md, index.html, report.txt): durations ("2.9 s", "1 min"),
# speeds ("1,632 img/s"), timestamps and hex code versions / signatures are masked; the rest
# of each line, embedded images included, must match.
TIMING_TEXT = re.compile(
    r"\d[\d,]*(\.\d+)? (s|ms|min|h|seconds|minutes)\b|\d[\d,]*(\.\d+)? ?(img|images)/s"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?Z?|\b[0-9a-f]{12,64}\b"
)
SKIPPED = {}  # what was left out, by name, for the summary
TEXT = {".md", ".html", ".txt", ".toml", ".csv", ".log"}


def skip_key(path, key):
    # A manifest's hash of one output or input file: that file is compared itself.
    skip = TIMING_KEY.search(key) or (
        key in ("hash", "bytes") and path.split("/")[-1] == "manifest.json"
    )
    if skip:
        SKIPPED[key] = SKIPPED.get(key, 0) + 1
    return skip


def cmp_json(a, b, where, out, path):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if skip_key(path, k):
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'A' if k in a else 'B'}")
            else:
                cmp_json(a[k], b[k], f"{where}.{k}", out, path)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            cmp_json(x, y, f"{where}[{i}]", out, path)
    elif a != b or type(a) is not type(b):
        out.append(f"{where}: {json.dumps(a)[:80]} vs {json.dumps(b)[:80]}")


def cmp_parquet(pa, pb, out, rel):
    ta, tb = pq.read_table(pa), pq.read_table(pb)
    if ta.schema.remove_metadata() != tb.schema.remove_metadata():
        out.append(f"{rel}: schema differs:\n{ta.schema}\nvs\n{tb.schema}")
        return
    if ta.num_rows != tb.num_rows:
        out.append(f"{rel}: {ta.num_rows} rows vs {tb.num_rows}")
        return
    for name in ta.column_names:
        if TIMING_KEY.search(name):
            SKIPPED[f"column {name}"] = SKIPPED.get(f"column {name}", 0) + 1
            continue
        ca, cb = ta.column(name), tb.column(name)
        if not ca.equals(cb):
            la, lb = ca.to_pylist(), cb.to_pylist()
            rows = [i for i, (x, y) in enumerate(zip(la, lb)) if x != y and not (x != x and y != y)]
            if rows:
                i = rows[0]
                out.append(f"{rel}: column {name}: {len(rows)} rows differ (row {i}: {la[i]!r} vs {lb[i]!r})")


def cmp_safetensors(pa, pb, out, rel):
    def split(p):
        b = p.read_bytes()
        n = struct.unpack("<Q", b[:8])[0]
        return json.loads(b[8 : 8 + n]), b[8 + n :]

    (ha, da), (hb, db) = split(pa), split(pb)
    cmp_json(ha, hb, rel, out, rel)
    if da != db:
        out.append(f"{rel}: tensor bytes differ")


def cmp_text(pa, pb, out, rel):
    def lines(p):
        masked = []
        for line in p.read_text().splitlines():
            m, n = TIMING_TEXT.subn("<t>", line)
            SKIPPED["masked text tokens"] = SKIPPED.get("masked text tokens", 0) + n
            masked.append(m)
        return masked

    la, lb = lines(pa), lines(pb)
    if la != lb:
        diff = [(x, y) for x, y in zip(la, lb) if x != y]
        first = diff[0] if diff else (f"{len(la)} lines", f"{len(lb)} lines")
        out.append(f"{rel}: {len(diff)} lines differ: {first[0][:100]!r} vs {first[1][:100]!r}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    out = [f"{f}: only in A" for f in sorted(files_a - files_b)]
    out += [f"{f}: only in B" for f in sorted(files_b - files_a)]
    counts = {}
    for rel in sorted(files_a & files_b):
        pa, pb = a / rel, b / rel
        ext = pa.suffix
        counts[ext] = counts.get(ext, 0) + 1
        if ext == ".parquet":
            cmp_parquet(pa, pb, out, rel)
        elif ext == ".json":
            cmp_json(json.loads(pa.read_text()), json.loads(pb.read_text()), rel, out, rel)
        elif ext == ".safetensors":
            cmp_safetensors(pa, pb, out, rel)
        elif ext in TEXT:
            cmp_text(pa, pb, out, rel)
        elif pa.read_bytes() != pb.read_bytes():
            out.append(f"{rel}: bytes differ")
    summary = ", ".join(f"{n} {e or 'other'}" for e, n in sorted(counts.items()))
    for line in out:
        print(line)
    print("left out: " + ", ".join(f"{k} x{n}" for k, n in sorted(SKIPPED.items())))
    print(f"{a} vs {b}: {len(files_a & files_b)} files compared ({summary}): "
          + ("EQUAL" if not out else f"{len(out)} DIFFERENCES"))
    sys.exit(1 if out else 0)


if __name__ == "__main__":
    main()

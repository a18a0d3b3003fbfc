#!/usr/bin/env bash
# Check that every build of the workspace compiles the crates they share with the same features:
# `make all` (binaries, with the `yunet` feature: tract-onnx), `make test` (tests, with the
# dev-dependencies, without yunet), the other two mixes, and .ci/run's builds with tune's
# `study` feature (sqlx) and fer-cache's `s3` (object_store's S3 client). Where features differ, cargo
# compiles a crate and everything above it twice (burn-core, for one, when insta's dev
# dependency turned on regex's `std`). The pins are in crates/detect/Cargo.toml.
# Exit 1 naming the crates whose features differ; 0 when builds only add crates. `--locked`, not
# `--offline`: on a machine whose cargo registry holds only what `make test` built, cargo tree
# downloads the other features' crates (wgpu's, tract's) to resolve them.
set -euo pipefail
cd "$(dirname "$0")/.."
tree() { cargo tree --locked --workspace --prefix none -f '{p} {f}' "$@" | sed 's/ (\*)$//' | sort -u; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
tree -e normal,build >"$dir/bins"
tree -e normal,build,dev >"$dir/tests"
tree -e normal,build --features fer-predict/yunet >"$dir/bins-yunet"
tree -e normal,build,dev --features fer-predict/yunet >"$dir/tests-yunet"
# tune's study store (sqlx), as .ci/run builds it: pinned in crates/tune/Cargo.toml.
# and the shared run cache's S3 client (fer-cache's `s3`): pinned in crates/detect/Cargo.toml.
tree -e normal,build --features fer-predict/yunet,fer-tune/study,fer-bench/study,fer-cache/s3 >"$dir/bins-study"
tree -e normal,build,dev --features fer-tune/study,fer-cache/s3 >"$dir/tests-study"
# .ci/run's YuNet tests select two packages, and make hostile / make scenes build predict's
# examples alone; cargo resolves features for those selections alone.
cargo tree --locked -p fer-detect -p fer-predict --prefix none -f '{p} {f}' -e normal,build,dev \
  --features fer-predict/yunet | sed 's/ (\*)$//' | sort -u >"$dir/yunet-tests"
cargo tree --locked -p fer-predict --prefix none -f '{p} {f}' -e normal,build \
  --features fer-predict/yunet | sed 's/ (\*)$//' | sort -u >"$dir/predict-examples"
python3 - "$dir" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        parts = line.split()
        if len(parts) >= 2:
            d.setdefault(" ".join(parts[:2]), set()).add(line.strip())
    return d
dir = sys.argv[1]
builds = {n: load(f"{dir}/{n}") for n in ["bins", "tests", "bins-yunet", "tests-yunet",
                                          "bins-study", "tests-study", "yunet-tests",
                                          "predict-examples"]}
bad = []
names = list(builds)
for i, x in enumerate(names):
    for y in names[i + 1:]:
        a, b = builds[x], builds[y]
        for k in sorted(set(a) & set(b)):
            # The two crates the feature is about differ by it, on purpose.
            if k.startswith(("fer-detect ", "fer-predict ", "fer-tune ", "fer-bench ", "fer-cache ", "object_store ")):
                continue
            # A build may add variants of a crate (another build script's), never change one.
            small, large = (a[k], b[k]) if len(a[k]) <= len(b[k]) else (b[k], a[k])
            if not small <= large:
                bad.append(f"{k} ({x} vs {y}): {sorted(a[k])} vs {sorted(b[k])}")
if bad:
    print("feature-parity: these crates compile with other features in another build "
          "(pin them in crates/detect/Cargo.toml):", *bad, sep="\n  ")
    sys.exit(1)
print(f"feature-parity: ok ({len(builds['bins'])} crates keep their features across make all, "
      f"make test and both with and without yunet and tune's study and the S3 client; yunet adds "
      f"{len(set(builds['bins-yunet']) - set(builds['bins']))}, the study and S3 client "
      f"{len(set(builds['bins-study']) - set(builds['bins-yunet']))})")
PY

#!/usr/bin/env bash
# The shared run cache (issue 32) against a real S3-compatible server: s3s-fs, the S3 server
# published as a Rust crate (s3s project), installed from crates.io when missing, started on the
# loopback address with a key pair, over a temporary folder, and stopped at the end.
#   1. fer-cache's tests, the S3 one included (FER_TEST_S3_URL);
#   2. this checkout's `make all PIPELINE=ci` (already run) pushed stage by stage with fer-cache;
#   3. a second clone of the repository, with an empty artifacts folder and an empty local run
#      cache, runs `make all PIPELINE=ci` with FER_CACHE_URL: every stage must be restored, none
#      computed, with the same signatures and output hashes as here. It uses this checkout's
#      binaries (CARGO=true: the same commit, so the same code versions) to save a second build;
#   4. a blob changed in the server's folder: the second clone's next pull quarantines the
#      entry in the store, the stage is computed there and pushed afresh;
#   5. a tune worker on "another machine": an empty artifacts folder, no data, and only
#      FER_TUNE_UPSTREAM (what `fer-tune --print-upstream` prints here) and FER_CACHE_URL. It
#      pulls preprocess by signature and runs the whole `ci` search, its checkpoints and study
#      in a folder standing for the shared file system (FER_TUNE_SHARED); then `fer-tune
#      --finish` on a copy of this checkout's artifacts writes the stage's outputs, which must
#      equal this checkout's tune (scripts/compare-artifacts.py).
# Usage: scripts/remote-cache-check.sh   (FER2013_DIR as for make; needs the binaries built with
# --features fer-tune/study,fer-cache/s3, as .ci/run's study section builds them, and artifacts/ci from
# make all PIPELINE=ci)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The second clone runs elsewhere: a data folder given relative to this checkout (.ci/run's
# default, ../shared/data/fer2013) must be made absolute first. The stage signatures hold the
# data's content hashes, never its path, so the two checkouts still agree.
abs() { (cd "$1" 2>/dev/null && pwd) || echo "$1"; }
FER2013_DIR=$(abs "${FER2013_DIR:-data/fer2013}")
FERPLUS_DIR=$(abs "${FERPLUS_DIR:-data/ferplus}")
export FER2013_DIR FERPLUS_DIR
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
bin="$target/release"
S3S_VERSION=0.14.1
s3s="$target/s3s/bin/s3s-fs"
if [ ! -x "$s3s" ]; then
  cargo install --quiet s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$target/s3s"
fi
work=$(mktemp -d /tmp/fer-s3.XXXXXX)
mkdir -p "$work/store/fer-ci"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$s3s" --host 127.0.0.1 --port "$port" --access-key fer-ci-key --secret-key fer-ci-secret \
  "$work/store" > "$work/s3s.log" 2>&1 &
s3s_pid=$!
cleanup() { kill "$s3s_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do
  (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
export AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=fer-ci-key AWS_SECRET_ACCESS_KEY=fer-ci-secret
url="s3://fer-ci/runs"

# 1. The library's tests against the server.
# (The features of .ci/run's study tests, so that nothing but this test compiles.)
FER_TEST_S3_URL="s3://fer-ci/tests" cargo test --release --quiet --workspace \
  --features fer-tune/study,fer-cache/s3 --test remote -- --nocapture 2>&1 | grep -v "^$"

# 2. Push what this checkout computed.
stages=()
for d in artifacts/ci/*/; do [ -f "$d/manifest.json" ] && stages+=("${d%/}"); done
FER_CACHE_URL="$url" "$bin/fer-cache" push "${stages[@]}"
again=$(FER_CACHE_URL="$url" "$bin/fer-cache" push "${stages[@]}" 2>&1 | grep -c "already in" || true)
[ "$again" -eq "${#stages[@]}" ] || { echo "error: a second push stored again" >&2; exit 1; }

# 3. A second clone with nothing but the remote cache.
git clone --quiet "$root" "$work/clone"
cd "$work/clone"
log="$work/clone.log"
make --no-print-directory all PIPELINE=ci FER2013_DIR="$FER2013_DIR" FERPLUS_DIR="$FERPLUS_DIR" FER_CACHE_URL="$url" \
  FER_CACHE_DIR="$work/local-cache" CARGO=true CARGO_TARGET_DIR="$target" 2>&1 | tee "$log"
python3 - "$root/artifacts/ci" "$work/clone/artifacts/ci" <<'PY'
import json, pathlib, sys
a, b = (pathlib.Path(p) for p in sys.argv[1:3])
stages = sorted(p.parent.name for p in a.glob("*/manifest.json"))
bad = []
for s in stages:
    ma = json.loads((a / s / "manifest.json").read_text())
    p = b / s / "manifest.json"
    if not p.exists():
        bad.append(f"{s}: not restored (no manifest)")
        continue
    mb = json.loads(p.read_text())
    if mb["status"] != "restored":
        bad.append(f"{s}: {mb['status']}, not restored")
    if mb["signature"] != ma["signature"]:
        bad.append(f"{s}: signature differs")
    if [(o["path"], o["hash"]) for o in mb["outputs"]] != [(o["path"], o["hash"]) for o in ma["outputs"]]:
        bad.append(f"{s}: outputs differ")
    print(f"{s:12} {mb['status']:9} {ma['signature'][:12]}")
if bad:
    sys.exit("error: the second clone did not restore every stage:\n  " + "\n  ".join(bad))
print(f"second clone: {len(stages)} stages restored from the remote cache, none computed")
PY
if grep -E "computing|computed in" "$log"; then
  echo "error: the second clone computed a stage" >&2
  exit 1
fi

# 4. A blob changed in the server's folder (same size, one byte): the pull quarantines the entry in
# the store and installs nothing; the stage is computed, and pushed afresh.
h=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(next(o["hash"] for o in m["outputs"] if o["path"].endswith(".md")))' artifacts/ci/report/manifest.json)
blob="$work/store/fer-ci/runs/blobs/${h:0:2}/$h"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[0]^=1; open(p,"wb").write(b)' "$blob"
rm -rf artifacts/ci/report "$work/local-cache/report"
make --no-print-directory report PIPELINE=ci FER2013_DIR="$FER2013_DIR" FERPLUS_DIR="$FERPLUS_DIR" FER_CACHE_URL="$url" \
  FER_CACHE_DIR="$work/local-cache" CARGO=true CARGO_TARGET_DIR="$target" 2>&1 | tee "$log"
grep -q "content differs from its hash): moved to quarantine/" "$log"
grep -q '"status": "computed"' artifacts/ci/report/manifest.json
ls "$work/store/fer-ci/runs/quarantine/"*/manifest.json > /dev/null
grep -q "pushed to $url" "$log"
echo "remote cache: a changed blob was quarantined in the store, the stage computed and pushed afresh"

# 5. A tune worker elsewhere: nothing but the study, the shared cache and a shared folder.
cd "$root"
upstream=$("$bin/fer-tune" --pipeline ci --print-upstream)
echo "fer-tune --print-upstream: $upstream"
mkdir -p "$work/far" "$work/shared"
( cd "$work/clone" && env -u FER2013_DIR -u FERPLUS_DIR FER_TUNE_UPSTREAM="$upstream" FER_CACHE_URL="$url" \
  FER_CACHE_DIR="$work/far-cache" FER_TUNE_SHARED="$work/shared" \
  "$bin/fer-tune" --worker --pipeline ci --artifacts "$work/far" ) 2>&1 | tee "$log"
grep -q "preprocess/.*: from $url into $work/far/ci/preprocess" "$log"
[ ! -e "$work/far/ci/ingest" ] || { echo "error: the worker has more than preprocess" >&2; exit 1; }
# The outputs, written once where the pipeline ran (the second clone, whose stages equal this
# checkout's), from the study the worker finished; no run cache, so they are computed, not
# restored.
rm -rf "$work/clone/artifacts/ci/tune"
( cd "$work/clone" && FER_CACHE_DIR=off FER_TUNE_SHARED="$work/shared" \
  "$bin/fer-tune" --pipeline ci --finish )
# compare-artifacts reads the Parquet tables with pyarrow, which a new machine lacks: from PyPI.
python3 -c 'import pyarrow' 2>/dev/null || python3 -m pip install --quiet pyarrow
python3 scripts/compare-artifacts.py artifacts/ci/tune "$work/clone/artifacts/ci/tune"
[ ! -e "$work/shared/ci/.tune.resume" ] || { echo "error: the finished search left its resume folder" >&2; exit 1; }
echo "tune worker elsewhere: preprocess pulled by signature, the search equal to this checkout's"

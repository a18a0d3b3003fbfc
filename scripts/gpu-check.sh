#!/usr/bin/env bash
# make gpu-check (issue 33): the wgpu path checked on this machine, on its GPU or, where there is
# none, on Mesa's lavapipe (a conformant Vulkan that runs on the CPU; Debian's
# mesa-vulkan-drivers, installed here when missing and run as root). Steps, each timed:
#   1. the build: every binary and the `gpu` example with --features fer-train-cnn/wgpu, into
#      its own target folder (GPU_TARGET_DIR, default target/gpu; about 20 min on 2 cores);
#   2. the adapter wgpu picks (`gpu info`);
#   3. agreement with the CPU backend (`gpu agree`): every architecture's eval logits, and one
#      training step's loss and parameter gradients, from the same weights and batch;
#   4. a whole pipeline on wgpu: `make all PIPELINE=smoke-gpu DEVICE=wgpu`, ingest to report,
#      then the same file with DEVICE=cpu (the same binaries), test accuracy of each;
#   5. portable weights both ways: fer-predict scores drawn faces with the CPU-trained fer-small
#      and the wgpu-trained one, each on both devices (p_happy within 1e-4, the same labels).
# Writes artifacts/gpu-check/ (agree.json, summary.md, logs). Exit 1 when a check fails, 2 when
# something it needs is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${GPU_TARGET_DIR:-target/gpu}
out=artifacts/gpu-check
mkdir -p "$out"
summary="$out/summary.md"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
t_start=$SECONDS
step() { echo "== gpu-check: $* (at $(((SECONDS - t_start) / 60))m$(((SECONDS - t_start) % 60))s)"; }

step "Vulkan"
icds() { ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null || true; }
# The loader: ldconfig's list (root's PATH has it), else the usual library folders.
loader() {
  local f
  grep -q 'libvulkan\.so\.1' <(/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null) && return 0
  for f in /usr/lib/*/libvulkan.so.1 /usr/lib64/libvulkan.so.1 /usr/lib/libvulkan.so.1; do
    [ -e "$f" ] && return 0
  done
  return 1
}
if ! loader || [ -z "$(icds)" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
    echo "error: no Vulkan driver: install the Vulkan loader and a driver (Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers, which has lavapipe, a Vulkan on the CPU)" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libvulkan1 mesa-vulkan-drivers > /dev/null
fi
echo "Vulkan drivers: $(icds | xargs -n1 basename | tr '\n' ' ')"
# wgpu's Vulkan needs a runtime folder (the loader and Mesa's shader cache look for it).
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d /tmp/fer-xdg.XXXXXX)
  chmod 700 "$XDG_RUNTIME_DIR"
  export XDG_RUNTIME_DIR
fi

step "build (--features fer-train-cnn/wgpu, into $target)"
features="--features fer-predict/yunet --features fer-train-cnn/wgpu"
t=$SECONDS
# The same feature resolution as `make all DEVICE=wgpu` (its build is then a no-op).
# shellcheck disable=SC2086
CARGO_TARGET_DIR="$target" cargo build --release --quiet --workspace --bins --example gpu $features
build_s=$((SECONDS - t))
bin="$target/release"
gpu="$bin/examples/gpu"

step "adapter"
"$gpu" info | tee "$out/adapter.txt"
say "# make gpu-check, $(date -u +%Y-%m-%d), $(nproc) cores"
say ""
say "$(head -1 "$out/adapter.txt"); build ${build_s} s"

step "agreement with the CPU backend"
t=$SECONDS
agree_rc=0
"$gpu" agree --json "$out/agree.json" | tee "$out/agree.txt" || agree_rc=$?
say ""
say "Agreement with the CPU backend ($((SECONDS - t)) s; bounds: logits 1e-3 absolute, loss 1e-4 relative, gradients 1e-3 relative L2):"
say ""
grep '^|' "$out/agree.txt" | tee -a "$summary" > /dev/null || echo "(no table: gpu agree exited $agree_rc)" | tee -a "$summary"

step "smoke-gpu on wgpu, then on the CPU"
# The same pipeline file on both devices (one worker each, so the same batches and steps), with
# a run cache of its own, empty at first, so that both train (checked: each manifest says
# computed); that cache then restores the wgpu run at the end, leaving artifacts/smoke-gpu as
# the wgpu run.
models="$out/models"
rm -rf "$models" artifacts/smoke-gpu/train_cnn artifacts/smoke-gpu/tune artifacts/smoke-gpu/report
mkdir -p "$models"
FER_CACHE_DIR=$(mktemp -d /tmp/fer-gpu-cache.XXXXXX)
export FER_CACHE_DIR
faces=$(mktemp -d /tmp/fer-gpu-faces.XXXXXX)
trap 'rm -rf "$faces" "$FER_CACHE_DIR"' EXIT
computed() {
  python3 -c 'import json, sys
for p in sys.argv[1:]:
    s = json.load(open(p))["status"]
    if s != "computed":
        sys.exit(f"error: {p}: {s}, not computed: the run did not train")' \
    artifacts/smoke-gpu/train_cnn/manifest.json artifacts/smoke-gpu/tune/manifest.json
}
t=$SECONDS
make --no-print-directory all PIPELINE=smoke-gpu DEVICE=wgpu CARGO_TARGET_DIR="$target" 2>&1 | tee "$out/smoke-gpu-wgpu.log"
wgpu_s=$((SECONDS - t))
computed
cp -r artifacts/smoke-gpu/train_cnn "$models/wgpu"
cp artifacts/smoke-gpu/tune/summary.json "$models/wgpu/tune-summary.json"
t=$SECONDS
# CARGO=true: the binaries just built (the CPU device needs no other build).
make --no-print-directory all PIPELINE=smoke-gpu DEVICE=cpu CARGO=true CARGO_TARGET_DIR="$target" 2>&1 | tee "$out/smoke-gpu-cpu.log"
cpu_s=$((SECONDS - t))
computed
cp -r artifacts/smoke-gpu/train_cnn "$models/cpu"
cp artifacts/smoke-gpu/tune/summary.json "$models/cpu/tune-summary.json"
make --no-print-directory all PIPELINE=smoke-gpu DEVICE=wgpu CARGO=true CARGO_TARGET_DIR="$target" > "$out/smoke-gpu-restore.log" 2>&1
python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); sys.exit(None if m["params"]["device"] == "wgpu" else f"error: {sys.argv[1]}: not the wgpu run")' \
  artifacts/smoke-gpu/train_cnn/manifest.json
python3 - "$models" "$wgpu_s" "$cpu_s" >> "$summary" <<'PY'
import json, pathlib, sys
models, wgpu_s, cpu_s = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"\nmake all PIPELINE=smoke-gpu, ingest to report: DEVICE=wgpu {wgpu_s} s, DEVICE=cpu {cpu_s} s; test accuracy on 200 drawn faces:\n")
print("| model | wgpu | cpu |")
print("|---|---|---|")
def acc(dev, m):
    return json.loads((models / dev / m / "metrics.json").read_text())["metrics"]["test"]["accuracy"]
for m in sorted(d.name for d in (models / "wgpu").iterdir() if d.is_dir()):
    print(f"| {m} | {acc('wgpu', m):.3f} | {acc('cpu', m):.3f} |")
a, b = (json.loads((models / d / "tune-summary.json").read_text()) for d in ("wgpu", "cpu"))
print(f"| tune's winner (trial {a['best_trial']} / {b['best_trial']}) | {a['test_accuracy']:.3f} | {b['test_accuracy']:.3f} |")
report = pathlib.Path("artifacts/smoke-gpu/report/index.html")
print(f"\nsmoke-gpu's report, on the wgpu run: {report} ({report.stat().st_size} bytes)")
PY
tail -10 "$summary"

step "portable weights"
"$gpu" faces --out "$faces" --n 40 > /dev/null
predict_rc=0
for trained in cpu wgpu; do
  for dev in cpu wgpu; do
    "$bin/fer-predict" --model "$models/$trained/fer-small" --no-detect --quiet --device "$dev" \
      "$faces" > "$out/predict-$trained-trained-on-$dev.csv"
  done
  python3 - "$out/predict-$trained-trained-on-cpu.csv" "$out/predict-$trained-trained-on-wgpu.csv" "$trained-trained" >> "$summary" <<'PY' || predict_rc=1
import csv, sys
a, b, what = sys.argv[1:4]
rows = lambda f: {r["file"]: r for r in csv.DictReader(open(f))}
ra, rb = rows(a), rows(b)
bad = [f for f in ra if ra[f]["status"] != "ok" or rb.get(f, {}).get("status") != "ok"]
d = max((abs(float(ra[f]["p_happy"]) - float(rb[f]["p_happy"])) for f in ra if f not in bad), default=float("inf"))
same = sum(ra[f]["label"] == rb[f]["label"] for f in ra if f not in bad)
print(f"\nfer-predict, the {what} fer-small on {len(ra)} drawn faces, scored on the CPU and on wgpu: largest p_happy difference {d:.2e}, labels equal on {same} of {len(ra)}")
if bad or len(ra) != len(rb) or d > 1e-4 or same != len(ra):
    sys.exit(f"error: {what}: the devices disagree ({len(bad)} faces not scored, p_happy difference {d:.2e}, bound 1e-4)")
PY
done
tail -3 "$summary"

say ""
say "gpu-check: $(((SECONDS - t_start) / 60)) min $(((SECONDS - t_start) % 60)) s in all (build ${build_s} s)"
if [ "$agree_rc" -ne 0 ] || [ "$predict_rc" -ne 0 ]; then
  echo "gpu-check: FAILED (agreement exit $agree_rc, portable weights exit $predict_rc); $summary" >&2
  exit 1
fi
echo "gpu-check: ok ($summary)"

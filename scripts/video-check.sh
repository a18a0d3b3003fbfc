#!/usr/bin/env bash
# Issue 30's video checks, end to end with Debian's ffmpeg:
#   1. a clip made from FER2013 test faces (scripts/make-clip.py, a known label per second);
#   2. `fer-predict --video clip` per second, against the same frames (extracted by ffmpeg with
#      the same filter) scored one by one as images: the counts must be equal, second by second;
#   3. the share happy per segment against the clip's script, within the model's accuracy
#      (checked when the model's test accuracy is at least 0.75);
#   4. the same clip served by ffmpeg on the loopback address (TCP, MPEG-TS, at its own pace):
#      rows as the file's, then the stream's end reported, retried and given up, exit 2;
#   5. a source sending garbage and one that stalls: a clear error, retried, exit 2, no panic.
#
#   scripts/video-check.sh [MODEL]      # default artifacts/ci/train_cnn/fer-small
# Env: FER2013_DIR, BIN (target/release), OUT (/tmp/fer-video-check), FER_FFMPEG.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-artifacts/ci/train_cnn/fer-small}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
OUT=${OUT:-/tmp/fer-video-check}
FFMPEG=${FER_FFMPEG:-ffmpeg}
export FER2013_DIR=${FER2013_DIR:-../shared/data/fer2013}
FPS=5
command -v "$FFMPEG" >/dev/null || { echo "video-check: $FFMPEG not found (apt-get install ffmpeg)" >&2; exit 2; }
[ -f "$MODEL/model.json" ] || { echo "video-check: $MODEL: no model.json (train it first)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT/frames"
python3 scripts/make-clip.py --out "$OUT/clip.mp4" --script 20:0.9,20:0.1,20:0.5

echo "== 1. the clip, per second"
"$BIN/fer-predict" --model "$MODEL" --video "$OUT/clip.mp4" --fps $FPS > "$OUT/seconds.csv" 2> "$OUT/video.log"
cat "$OUT/video.log"

echo "== 2. the same frames as images"
"$FFMPEG" -nostdin -hide_banner -loglevel error -i "$OUT/clip.mp4" -an \
  -vf "fps=$FPS,scale=640:480:force_original_aspect_ratio=decrease:flags=bilinear,pad=640:480:(ow-iw)/2:(oh-ih)/2,format=gray" \
  -start_number 0 "$OUT/frames/%06d.png"
"$BIN/fer-predict" --model "$MODEL" --quiet "$OUT/frames" > "$OUT/frames.csv"

python3 - "$OUT" "$FPS" "$MODEL" <<'EOF'
import csv, json, math, os, sys
out, fps, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MIN_FACES = 5
sec = {int(r["second"]): r for r in csv.DictReader(open(f"{out}/seconds.csv"))}
# Per frame, as images: frame k is <k>.png (numbered from 0).
per = {}
for r in csv.DictReader(open(f"{out}/frames.csv")):
    k = int(os.path.basename(r["file"]).split(".")[0])
    s = per.setdefault(k // fps, {"frames": set(), "with_face": set(), "faces": 0, "happy": 0})
    s["frames"].add(k)
    if r["status"] == "ok":
        s["with_face"].add(k)
        s["faces"] += 1
        s["happy"] += r["label"] == "happy"
    elif r["status"] != "no_face":
        sys.exit(f"frame {k}: {r['status']} {r.get('error')}")
bad = 0
for s in sorted(set(sec) | set(per)):
    a, b = sec.get(s), per.get(s)
    if a is None or b is None:
        print(f"second {s}: only in {'frames' if a is None else 'the video rows'}"); bad += 1; continue
    want = [len(b["frames"]), len(b["with_face"]), b["faces"]]
    shown = b["faces"] >= MIN_FACES
    want += [b["happy"] if shown else "", b["faces"] - b["happy"] if shown else ""]
    got = [int(a["frames"]), int(a["frames_with_face"]), int(a["faces"])]
    got += [int(a["happy"]) if a["happy"] else "", int(a["alerts"]) if a["alerts"] else ""]
    if got != want:
        print(f"second {s}: video rows {got} but frames give {want}"); bad += 1
print(f"per-second rows against per-frame answers: {len(sec)} seconds, {bad} differ")
if bad:
    sys.exit(1)
# The script: one face per second, a known label.
truth = list(csv.DictReader(open(f"{out}/clip.mp4.csv")))
metrics = json.load(open(f"{model}/metrics.json")) if os.path.exists(f"{model}/metrics.json") else {}
acc = metrics.get("metrics", {}).get("test", {}).get("accuracy")
if acc is None:
    sys.exit(f"{model}/metrics.json: no test accuracy (metrics.test.accuracy)")
segs = {}
agree = n = 0
for t in truth:
    r = sec.get(int(t["second"]))
    g = segs.setdefault(t["segment"], {"share": float(t["share"]), "happy": 0, "faces": 0, "seconds": 0})
    g["seconds"] += 1
    if r and r["happy"]:
        g["happy"] += int(r["happy"]); g["faces"] += int(r["faces"])
        n += 1
        agree += (int(r["happy"]) * 2 >= int(r["faces"])) == (t["label"] == "happy")
print(f"model test accuracy {acc:.3f}; seconds whose majority answer is the script's: {agree}/{n} = {agree / max(n, 1):.3f}")
fail = 0
checked = acc >= 0.75
for k, g in segs.items():
    m = g["happy"] / max(g["faces"], 1)
    tol = (1 - acc) + 2 * math.sqrt(acc * (1 - acc) / g["seconds"])
    ok = abs(m - g["share"]) <= tol
    fail += not ok
    print(f"segment {k}: script share happy {g['share']:.2f}, measured {m:.3f} over {g['faces']} faces "
          f"(|diff| {abs(m - g['share']):.3f}, tolerance {tol:.3f}) {('ok' if ok else 'FAIL') if checked else ''}")
if not checked:
    # CI's `ci` model (300/300 training faces, 3 epochs) is near chance: its answers follow no
    # script, so only the paths are checked with it; README has the figures of a real model.
    print(f"share against the script: not checked, the model's test accuracy {acc:.3f} is under 0.75")
    sys.exit(0)
sys.exit(1 if fail else 0)
EOF

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== 4. the clip served on the loopback address (20 s, at its own pace)"
P=$(port)
"$FFMPEG" -nostdin -hide_banner -loglevel error -re -i "$OUT/clip.mp4" -t 20 -c copy -bsf:v dump_extra -f mpegts \
  "tcp://127.0.0.1:$P?listen=1" &
SERVER=$!
sleep 1
set +e
"$BIN/fer-predict" --model "$MODEL" --video "tcp://127.0.0.1:$P" --fps $FPS --video-retries 1 \
  --video-stall 5 --quiet > "$OUT/stream.csv" 2> "$OUT/stream.log"
rc=$?
set -e
wait $SERVER || true
cat "$OUT/stream.log"
python3 - "$OUT" "$rc" <<'EOF'
import csv, sys
out, rc = sys.argv[1], int(sys.argv[2])
log = open(f"{out}/stream.log").read()
a = {int(r["second"]): r for r in csv.DictReader(open(f"{out}/seconds.csv"))}
b = {int(r["second"]): r for r in csv.DictReader(open(f"{out}/stream.csv"))}
same = sum(1 for s in b if s in a and a[s]["faces"] == b[s]["faces"] and a[s]["happy"] == b[s]["happy"])
print(f"stream: {len(b)} seconds, {same} equal to the file's; exit {rc}")
assert "panicked" not in log, "a panic"
assert rc == 2, f"exit {rc}, want 2 (the stream ended, retried, given up)"
assert "the stream ended" in log and "opening it again" in log, log
assert len(b) >= 18 and same >= len(b) - 3, "the stream's rows differ from the file's"
EOF

echo "== 5. garbage, then a stalled source"
P=$(port)
python3 - "$P" > /dev/null 2>&1 <<'EOF' &
import os, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
for i in range(4):
    c, _ = s.accept()
    if i < 2:
        c.sendall(os.urandom(1 << 20)); c.close()   # garbage, twice
    else:
        time.sleep(30); c.close()                    # nothing at all: a stall
EOF
GARBAGE=$!
sleep 0.5
for case in garbage stall; do
  set +e
  "$BIN/fer-predict" --model "$MODEL" --video "tcp://127.0.0.1:$P" --video-retries 1 --video-stall 3 \
    --quiet > "$OUT/$case.csv" 2> "$OUT/$case.log"
  rc=$?
  set -e
  echo "$case: exit $rc"; cat "$OUT/$case.log"
  [ "$rc" -eq 2 ] || { echo "video-check: $case: exit $rc, want 2" >&2; exit 1; }
  grep -q "opening it again" "$OUT/$case.log"
  ! grep -q panicked "$OUT/$case.log"
done
grep -q "no frame for 8 s" "$OUT/stall.log"  # --video-stall 3 + 5 s to open
kill $GARBAGE 2>/dev/null || true
echo "video-check: ok"

#!/usr/bin/env bash
# Issue 30's live page in headless Chromium (Debian's chromium package): `fer-predict serve
# --video <clip>` plays a clip made by scripts/make-clip.py at its own pace; the page (GET /)
# must load, poll /live.json and show numbers, and the numbers must change as the clip plays.
# Writes a screenshot, $OUT/page.png.
#
#   scripts/page-check.sh [MODEL]      # default artifacts/ci/train_cnn/fer-small
# Env: FER2013_DIR, BIN (target/release), OUT (/tmp/fer-page-check), CHROMIUM (chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-artifacts/ci/train_cnn/fer-small}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
OUT=${OUT:-/tmp/fer-page-check}
CHROMIUM=${CHROMIUM:-chromium}
export FER2013_DIR=${FER2013_DIR:-../shared/data/fer2013}
command -v "$CHROMIUM" >/dev/null || { echo "page-check: $CHROMIUM not found (apt-get install chromium)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT"
python3 scripts/make-clip.py --out "$OUT/clip.mp4" --script 30:0.8,30:0.2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/fer-predict" serve --model "$MODEL" --video "$OUT/clip.mp4" --addr "127.0.0.1:$PORT" \
  2> "$OUT/serve.log" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break
  sleep 0.2
done
# Chromium as the environment notes say: no sandbox as root, no background connections.
chrome() {
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" "$@" 2>> "$OUT/chromium.log"
}
URL="http://127.0.0.1:$PORT/?poll=1000"
sleep 3
chrome --virtual-time-budget=5000 --dump-dom "$URL" > "$OUT/dom1.html"
sleep 6
chrome --virtual-time-budget=5000 --dump-dom "$URL" > "$OUT/dom2.html"
chrome --virtual-time-budget=5000 --window-size=1100,1000 --screenshot="$OUT/page.png" "$URL"
python3 - "$OUT" <<'EOF'
import re, sys
out = sys.argv[1]
def read(n):
    d = open(f"{out}/dom{n}.html").read()
    v = lambda i: re.search(rf'id="{i}"[^>]*>([^<]*)<', d).group(1)
    faces, frames = map(int, re.search(r"(\d+) faces in (\d+) frames in all", d).groups())
    return {"share": v("share"), "alerts": v("alerts"), "fpm": v("fpm"), "drift": v("drift"),
            "polls": int(v("polls")), "updated": v("updated"), "faces": faces, "frames": frames,
            "bars": d.count("<rect")}
a, b = read(1), read(2)
print("first look: ", a)
print("second look:", b)
for x in (a, b):
    assert x["polls"] >= 2, "the page did not poll"
    assert x["updated"].startswith("updated"), x["updated"]
    assert re.fullmatch(r"\d+(\.\d+)?%", x["share"]), f"share {x['share']!r} is not a number"
    assert re.fullmatch(r"\d+", x["alerts"]), f"alerts {x['alerts']!r}"
    assert float(x["fpm"]) > 0
    assert x["bars"] >= 1, "no bar in the chart"
assert b["frames"] > a["frames"] and b["faces"] > a["faces"], "the numbers did not change as the clip played"
print("page-check: ok")
EOF
kill -TERM $SERVE
wait $SERVE
echo "page-check: serve stopped cleanly; screenshot $OUT/page.png"

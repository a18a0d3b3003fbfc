#!/usr/bin/env bash
# Render artifacts/<pipeline>/report/index.html in headless Chromium and save a full-page
# screenshot next to it (report/screenshot.png, not a stage output), to check that every chart
# renders. Needs chromium (Debian: apt-get install -y chromium).
#   scripts/screenshot-report.sh [pipeline] [width] [height]
set -euo pipefail
pipeline="${1:-seed}"
width="${2:-1280}"
height="${3:-12000}"
page="artifacts/$pipeline/report/index.html"
[ -f "$page" ] || { echo "no $page: run \`make report PIPELINE=$pipeline\` first" >&2; exit 2; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "chromium not found (apt-get install -y chromium)" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
out="artifacts/$pipeline/report/screenshot.png"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
  --user-data-dir="$profile" --window-size="$width,$height" \
  --screenshot="$PWD/$out" "file://$PWD/$page" 2>/dev/null
echo "$out"

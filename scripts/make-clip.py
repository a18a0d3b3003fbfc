#!/usr/bin/env python3
"""Make a test video from FER2013 faces, with a known label for every second (issue 30).

    scripts/make-clip.py --out /tmp/clip.mp4 [--fer2013 DIR] [--script 20:0.9,20:0.1,20:0.5]

Each second of the clip shows one face from FER2013's test split, scaled from 48x48 to
--face pixels and centred on a mid-gray --size frame. The script is a list of segments,
`seconds:share`: a segment of 20 seconds at share 0.9 shows round(0.9 * 20) = 18 happy faces
and 2 not happy ones (from the six other emotions), in a shuffled order. The choice is
deterministic for --seed.

Writes the clip (MPEG-4 part 2, --clip-fps frames per second, through ffmpeg) and, beside it,
`<out>.csv`: `second,label,segment,share,file` (label `happy` or `not_happy`). Needs ffmpeg
(Debian's package) and Python's standard library only.
"""

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile

NOT_HAPPY = ["angry", "disgust", "fear", "neutral", "sad", "surprise"]


def fail(msg):
    print(f"make-clip: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_script(s):
    segs = []
    for part in s.split(","):
        try:
            secs, share = part.split(":")
            secs, share = int(secs), float(share)
        except ValueError:
            fail(f"--script {s!r}: each segment is SECONDS:SHARE, e.g. 20:0.9")
        if secs <= 0 or not 0.0 <= share <= 1.0:
            fail(f"--script segment {part!r}: seconds > 0 and share in [0, 1]")
        segs.append((secs, share))
    return segs


def images(folder):
    if not os.path.isdir(folder):
        fail(f"{folder}: not a folder (FER2013's test split has one folder per emotion)")
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith((".jpg", ".jpeg", ".png"))
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the clip to write (.mp4, .mkv or .ts)")
    ap.add_argument("--fer2013", default=os.environ.get("FER2013_DIR", "../shared/data/fer2013"))
    ap.add_argument("--script", default="20:0.9,20:0.1,20:0.5")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--face", type=int, default=192, help="face side in pixels")
    ap.add_argument("--clip-fps", type=int, default=10)
    ap.add_argument("--ffmpeg", default=os.environ.get("FER_FFMPEG", "ffmpeg"))
    a = ap.parse_args()
    if shutil.which(a.ffmpeg) is None:
        fail(f"{a.ffmpeg} not found: install Debian's ffmpeg package (or set FER_FFMPEG)")
    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        fail(f"--size {a.size!r}: expected WIDTHxHEIGHT")
    if not (48 <= a.face <= min(w, h)):
        fail(f"--face {a.face}: between 48 and the frame's shorter side")
    test = os.path.join(a.fer2013, "test")
    happy = images(os.path.join(test, "happy"))
    other = [p for e in NOT_HAPPY for p in images(os.path.join(test, e))]
    if not happy or not other:
        fail(f"{test}: no happy or no not-happy images")
    rng = random.Random(a.seed)
    rng.shuffle(happy)
    rng.shuffle(other)
    rows, second = [], 0
    for k, (secs, share) in enumerate(parse_script(a.script)):
        n_happy = round(share * secs)
        labels = ["happy"] * n_happy + ["not_happy"] * (secs - n_happy)
        rng.shuffle(labels)
        for lab in labels:
            pool = happy if lab == "happy" else other
            if not pool:
                fail("the script needs more faces than the test split has")
            rows.append((second, lab, k, share, pool.pop()))
            second += 1
    with tempfile.TemporaryDirectory() as tmp:
        lst = os.path.join(tmp, "list.txt")
        with open(lst, "w") as f:
            for r in rows:
                f.write(f"file '{os.path.abspath(r[4])}'\nduration 1\n")
            # The concat demuxer takes the last entry's duration only when it is repeated.
            f.write(f"file '{os.path.abspath(rows[-1][4])}'\n")
        vf = (
            f"scale={a.face}:{a.face}:flags=bicubic,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=0x808080,"
            f"fps={a.clip_fps},format=yuv420p"
        )
        cmd = [
            a.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "concat", "-safe", "0", "-i", lst,
            "-vf", vf, "-t", str(len(rows)),
            "-c:v", "mpeg4", "-q:v", "2", "-g", str(a.clip_fps), a.out,
        ]
        r = subprocess.run(cmd)
        if r.returncode != 0:
            fail(f"ffmpeg failed ({r.returncode}): {' '.join(cmd)}")
    with open(a.out + ".csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["second", "label", "segment", "share", "file"])
        for r in rows:
            wr.writerow([r[0], r[1], r[2], r[3], os.path.relpath(r[4], a.fer2013)])
    n_h = sum(r[1] == "happy" for r in rows)
    print(f"make-clip: {a.out}: {len(rows)} s at {a.clip_fps} frames/s, {w}x{h}, "
          f"{n_h} happy and {len(rows) - n_h} not happy seconds; labels in {a.out}.csv",
          file=sys.stderr)


if __name__ == "__main__":
    main()

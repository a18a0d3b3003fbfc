#!/usr/bin/env bash
# reliability.sh: make-level checks of issue 18 (concurrent runs, data tracking, the run cache).
#
#   scripts/reliability.sh            # smoke checks; FER2013 checks too when FER2013_DIR exists
#
# Works on its own pipeline, `rel-smoke` (smoke under another name, written to pipelines/ and
# removed on exit, so artifacts/smoke is never touched) and its own run cache (a temporary
# FER_CACHE_DIR). With real data (FER2013_DIR, e.g. ../shared/data/fer2013) it also checks data
# tracking on `ci`'s ingest with a temporary pipeline `rel-ci` and a temporary copy of the data.
#
# Checks, each printed as PASS or FAIL (exit code 1 if any fails):
# 1. Two `make all PIPELINE=rel-smoke` at once, from nothing: both exit 0, one waited for the
#    other's lock, and a third `make all` finds every stage up to date and computes nothing.
# 2. A no-op `make all` takes under 2 s (timed here; a figure, not a test assertion elsewhere).
# 3. A corrupted run-cache entry is quarantined and recomputed: a stage's cached output is
#    changed, the stage's artifacts removed, `make` rerun: the stage computes again, warns,
#    and the bad entry sits in the cache's quarantine/.
# 4. `--no-wait` while the pipeline is locked exits 2 naming the holder.
# 5. (real data) FER2013_DIR pointing at a missing folder: `make ingest` fails (exit 2) naming
#    it, where make used to say "Nothing to be done".
# 6. (real data) The same data copied with old timestamps: ingest is up to date. One image of
#    the copy replaced in place with another's bytes (timestamp kept): ingest recomputes.
set -uo pipefail

cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/fer-rel.XXXXXX)
export FER_CACHE_DIR="$WORK/cache"
FAILS=0
cleanup() {
    rm -f pipelines/rel-smoke.toml pipelines/rel-ci.toml
    rm -rf artifacts/rel-smoke artifacts/rel-ci "$WORK"
}
trap cleanup EXIT
pass() { echo "PASS  $*"; }
fail() {
    echo "FAIL  $*"
    FAILS=$((FAILS + 1))
}
now() { date +%s.%N; }

printf 'extends = "smoke"\n' >pipelines/rel-smoke.toml
rm -rf artifacts/rel-smoke
make --no-print-directory -s ingest PIPELINE=rel-smoke >/dev/null 2>&1 # builds the binaries
rm -rf artifacts/rel-smoke

# 1. Two concurrent make all.
t0=$(now)
make --no-print-directory all PIPELINE=rel-smoke >"$WORK/a.log" 2>&1 &
pa=$!
sleep 0.5
make --no-print-directory all PIPELINE=rel-smoke >"$WORK/b.log" 2>&1 &
pb=$!
wait $pa
ra=$?
wait $pb
rb=$?
t1=$(now)
waited=$(cat "$WORK/a.log" "$WORK/b.log" | grep -c "waiting for")
computed=$(cat "$WORK/a.log" "$WORK/b.log" | grep -c "computed in")
if [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ "$waited" -ge 1 ]; then
    pass "two concurrent make all: both exit 0 ($(printf '%.0f' "$(echo "$t1 - $t0" | bc)") s), $waited wait(s) for the lock, $computed stage computations in all"
else
    fail "two concurrent make all: exit codes $ra and $rb, $waited waits (logs: a.log, b.log below)"
    tail -20 "$WORK/a.log" "$WORK/b.log"
fi
make --no-print-directory all PIPELINE=rel-smoke >"$WORK/c.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && ! grep -q "computing\|restored" "$WORK/c.log"; then
    pass "a third make all computes nothing: $(tr '\n' ' ' <"$WORK/c.log" | sed 's/  */ /g' | cut -c1-160)"
else
    fail "a third make all (exit $rc) recomputed: $(cat "$WORK/c.log")"
fi
for t in $(make -s --no-print-directory print-stages); do
    s=${t//-/_}
    [ -f "artifacts/rel-smoke/$s/manifest.json" ] || fail "artifacts/rel-smoke/$s/manifest.json missing"
done
if ls -a artifacts/rel-smoke | grep -q '\.tmp'; then
    fail "temporary folders left: $(ls -a artifacts/rel-smoke | grep '\.tmp' | tr '\n' ' ')"
fi

# 2. No-op make all.
best=999
for _ in 1 2 3; do
    t0=$(now)
    make --no-print-directory -s all PIPELINE=rel-smoke >/dev/null 2>&1
    t=$(echo "$(now) - $t0" | bc)
    best=$(echo "if ($t < $best) $t else $best" | bc)
done
if [ "$(echo "$best < 2" | bc)" = 1 ]; then
    pass "no-op make all: $(printf '%.2f' "$best") s (best of 3)"
else
    fail "no-op make all: $(printf '%.2f' "$best") s (best of 3), over 2 s"
fi

# 3. A corrupted cache entry.
sig=$(jq -r .signature artifacts/rel-smoke/stats/manifest.json)
entry="$FER_CACHE_DIR/stats/$sig"
victim=$(jq -r '.outputs[0].path' artifacts/rel-smoke/stats/manifest.json)
if [ -f "$entry/$victim" ]; then
    printf 'x' >>"$entry/$victim"
    rm -rf artifacts/rel-smoke/stats
    make --no-print-directory stats PIPELINE=rel-smoke >"$WORK/d.log" 2>&1
    rc=$?
    q=$(ls "$FER_CACHE_DIR/quarantine" 2>/dev/null | grep -c "^stats-$sig")
    if [ $rc -eq 0 ] && grep -q "computed in" "$WORK/d.log" && grep -q "is bad" "$WORK/d.log" && [ "$q" = 1 ] &&
        [ "$(jq -r .status "$entry/manifest.json")" = computed ]; then
        pass "corrupted cache entry ($victim): $(grep -o 'warning: run cache entry.*' "$WORK/d.log" | cut -c1-100)...; recomputed and stored afresh"
    else
        fail "corrupted cache entry: exit $rc, quarantined $q: $(cat "$WORK/d.log")"
    fi
else
    fail "no cache entry $entry/$victim to corrupt"
fi

# 4. --no-wait while locked.
exec 9>>artifacts/rel-smoke/.lock
flock 9
printf 'pid %s, reliability.sh, since now\n' "$$" >artifacts/rel-smoke/.lock
out=$(target/release/fer-stats --pipeline rel-smoke --no-wait 2>&1)
rc=$?
flock -u 9
exec 9>&-
if [ $rc -eq 2 ] && echo "$out" | grep -q "reliability.sh"; then
    pass "--no-wait on a locked pipeline: exit 2: $out"
else
    fail "--no-wait on a locked pipeline: exit $rc: $out"
fi

# 5 and 6: real data.
DATA=${FER2013_DIR:-data/fer2013}
if [ -d "$DATA/train" ]; then
    printf 'extends = "ci"\n' >pipelines/rel-ci.toml
    make --no-print-directory -s ingest PIPELINE=rel-ci FER2013_DIR="$DATA" >/dev/null 2>&1 ||
        fail "make ingest PIPELINE=rel-ci on $DATA"
    out=$(FER2013_DIR=/nonexistent/fer make --no-print-directory ingest PIPELINE=rel-ci 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q "/nonexistent/fer"; then
        pass "FER2013_DIR=/nonexistent/fer make ingest: exit $rc: $(echo "$out" | grep error)"
    else
        fail "FER2013_DIR=/nonexistent/fer make ingest: exit $rc: $out"
    fi
    make --no-print-directory -s ingest PIPELINE=rel-ci FER2013_DIR="$DATA" >/dev/null 2>&1
    copy="$WORK/fer2013"
    mkdir -p "$copy"
    cp -r "$DATA/train" "$DATA/test" "$copy/"
    find "$copy" -type f -exec touch -d 2001-01-01 {} +
    out=$(make --no-print-directory ingest PIPELINE=rel-ci FER2013_DIR="$copy" 2>&1)
    if echo "$out" | grep -q "up to date"; then
        pass "the same data copied with old mtimes: ingest up to date"
    else
        fail "the same data copied with old mtimes: $out"
    fi
    a=$(find "$copy/train/happy" -type f | sort | head -1)
    b=$(find "$copy/train/happy" -type f | sort | sed -n 2p)
    cp "$b" "$a"
    touch -d 2001-01-01 "$a"
    out=$(make --no-print-directory ingest PIPELINE=rel-ci FER2013_DIR="$copy" 2>&1)
    if echo "$out" | grep -q "computed in"; then
        pass "an image replaced in place (mtime kept): ingest recomputed"
    else
        fail "an image replaced in place: $out"
    fi
else
    echo "SKIP  data tracking on real data: $DATA/train not found (set FER2013_DIR)"
fi

echo "reliability: $FAILS failure(s)"
[ $FAILS -eq 0 ]

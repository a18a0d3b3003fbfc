#!/usr/bin/env bash
# fault-inject.sh: kill -9 train-cnn and tune at random moments on the smoke pipeline and check
# that every rerun completes and ends with the same predictions as an uninterrupted run.
#
#   scripts/fault-inject.sh                 # 20 kills per stage, seed 18
#   KILLS=30 SEED=7 scripts/fault-inject.sh
#   STAGES=train-cnn scripts/fault-inject.sh
#
# Needs the release binaries (`cargo build --release --workspace`) and jq; downloads nothing
# (smoke's data is synthetic). Works in a temporary folder (WORK=... to choose it; kept when
# KEEP=1), never in artifacts/ or the run cache (`--cache-dir off` throughout).
#
# What it does:
# 1. Copies pipelines/smoke.toml with `[tune] time_limit` raised to 1000h, so tune's search is
#    bounded by its trial budget (max_trials) and not by the clock; ingests and preprocesses
#    it once.
# 2. Reference: runs train-cnn, then tune, uninterrupted into one artifacts folder, timing them.
# 3. For each stage, in a second artifacts folder: starts the stage, kills it with kill -9
#    after a seeded random delay spread over 0..1.2x its uninterrupted time (every 4th start
#    instead waits for a checkpoint write in progress, a temporary file or an epoch folder
#    without its state.json, and kills it then), and starts it again, until KILLS kills
#    landed. A run that finishes before its kill is a completed rerun: it is checked, then the
#    stage's outputs and resume folder are removed to start another round. Last, one run
#    without a kill must complete.
# 4. Every completed run is compared with the reference: the predictions.parquet hashes in
#    the manifests (train-cnn: every model; tune: best/), the tensors of every
#    model.safetensors (header without burn's metadata, which it writes in hash-map order,
#    and data), and for tune the winner in summary.json (trial, val accuracy, params, counts).
#    A run that exits non-zero (a wedged resume) or a mismatch fails the script.
# Prints a summary (kills, how many caught a checkpoint write unfinished, how far the run had
# got at each kill, reruns, equal / not equal, failed); exit code 0 only if every run completed and every comparison was equal.
set -euo pipefail

cd "$(dirname "$0")/.."
KILLS=${KILLS:-20}
SEED=${SEED:-18}
STAGES=${STAGES:-"train-cnn tune"}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
WORK=${WORK:-$(mktemp -d /tmp/fer-fault.XXXXXX)}
MAX_STARTS=${MAX_STARTS:-400}

for b in fer-ingest fer-preprocess fer-train-cnn fer-tune; do
    [ -x "$BIN/$b" ] || { echo "error: $BIN/$b not found: run cargo build --release --workspace" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "error: jq is needed" >&2; exit 2; }
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
RANDOM=$SEED

PIPE="$WORK/smoke.toml"
sed -E 's/^time_limit = .*/time_limit = "1000h"/' pipelines/smoke.toml >"$PIPE"
grep -q '^time_limit = "1000h"' "$PIPE" || { echo "error: smoke.toml has no [tune] time_limit to raise" >&2; exit 2; }

stage_dir() { case $1 in train-cnn) echo train_cnn ;; *) echo "$1" ;; esac; }
run_stage() { # artifacts stage [args...]
    local a=$1 s=$2
    shift 2
    "$BIN/fer-$s" --pipeline "$PIPE" --artifacts "$a" --cache-dir off --quiet "$@"
}
now() { date +%s.%N; }
# A random number of milliseconds in 0..$1 (bash's RANDOM, seeded above: 30 bits).
rand_ms() { echo $(((RANDOM * 32768 + RANDOM) % ($1 + 1))); }

# Hashes of what must be equal, one line per item, for an artifacts folder and a stage.
fingerprint() { # artifacts stage
    local d
    d="$1/smoke/$(stage_dir "$2")"
    jq -r '.outputs[] | select(.path | endswith("predictions.parquet")) | "\(.path) \(.hash)"' "$d/manifest.json"
    find "$d" -name model.safetensors | sort | while read -r f; do
        echo "${f#"$d"/} tensors $(tensors_hash "$f")"
    done
    if [ "$2" = tune ]; then
        jq -c '{best_trial, best_val_acc, best_epochs, best_params, trials, completed, pruned, failed, stopped}' "$d/summary.json"
    fi
}
# sha256 of a safetensors file without its metadata: the header's tensor entries (sorted) and
# the data that follows the header.
tensors_hash() {
    local n
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    {
        head -c $((8 + n)) "$1" | tail -c "$n" | jq -cS 'del(.__metadata__)'
        tail -c +$((9 + n)) "$1"
    } | sha256sum | cut -d' ' -f1
}
# Whether a checkpoint write was in progress: a temporary file, or an epoch folder without
# its state.json, in the stage's resume folder.
torn() { # artifacts stage
    local r
    r="$1/smoke/.$(stage_dir "$2").resume"
    [ -d "$r" ] || return 1
    [ -n "$(find "$r" \( -name '.*.tmp-*' -o \( -type d -name 'epoch-*' -exec test ! -e '{}/state.json' ';' \) \) -print -quit 2>/dev/null)" ]
}

# How far the run had got: epochs checkpointed so far, summed over the stage's models (tune:
# trials), from the newest complete generation of each.
progress() { # artifacts stage
    local r
    r="$1/smoke/.$(stage_dir "$2").resume"
    [ -d "$r" ] || { echo 0; return; }
    find "$r" -path '*/epoch-*/state.json' 2>/dev/null |
        awk -F/ '{ e = $(NF-1); sub("epoch-", "", e); d = $0; sub("/epoch-[0-9]+/state.json$", "", d);
                   if (e + 0 > m[d]) m[d] = e + 0 } END { s = 0; for (d in m) s += m[d]; print s }'
}

echo "fault injection: seed $SEED, $KILLS kills per stage, work folder $WORK"
REF="$WORK/ref"
for s in ingest preprocess; do run_stage "$REF" "$s"; done
declare -A T
for s in $STAGES; do
    t0=$(now)
    run_stage "$REF" "$s"
    T[$s]=$(echo "$(now) - $t0" | bc)
    fingerprint "$REF" "$s" >"$WORK/ref-$s.txt"
    printf 'reference %-9s %5.1f s uninterrupted; %s\n' "$s" "${T[$s]}" \
        "$(grep -c 'predictions.parquet' "$WORK/ref-$s.txt") predictions file(s) to match"
done

fail=0
summary=()
for s in $STAGES; do
    sd=$(stage_dir "$s")
    KD="$WORK/killed-$s"
    mkdir -p "$KD/smoke"
    cp -r "$REF/smoke/ingest" "$REF/smoke/preprocess" "$KD/smoke/"
    window_ms=$(echo "${T[$s]} * 1200 / 1" | bc)
    kills=0 torn_kills=0 starts=0 completed=0 equal=0 unequal=0 wedged=0 rounds=0
    declare -A at=()
    check() { # a completed run: compare, then reset for another round
        completed=$((completed + 1))
        if fingerprint "$KD" "$s" | diff -q - "$WORK/ref-$s.txt" >/dev/null; then
            equal=$((equal + 1))
        else
            unequal=$((unequal + 1))
            echo "  MISMATCH after $kills kills:" >&2
            fingerprint "$KD" "$s" | diff - "$WORK/ref-$s.txt" >&2 || true
        fi
    }
    while [ "$kills" -lt "$KILLS" ] && [ "$starts" -lt "$MAX_STARTS" ]; do
        starts=$((starts + 1))
        targeted=$((starts % 4 == 0))
        delay=$(rand_ms "$window_ms")
        # (The binary itself in the background, not a function's subshell: $! is its pid.)
        "$BIN/fer-$s" --pipeline "$PIPE" --artifacts "$KD" --cache-dir off --quiet \
            2>>"$WORK/killed-$s.log" &
        pid=$!
        t0=$(now)
        while kill -0 "$pid" 2>/dev/null; do
            el=$(echo "($(now) - $t0) * 1000 / 1" | bc)
            if [ "$targeted" = 1 ]; then
                torn "$KD" "$s" && break
                [ "$el" -ge "$window_ms" ] && break
            else
                [ "$el" -ge "$delay" ] && break
            fi
            sleep 0.002
        done
        kill -9 "$pid" 2>/dev/null || true
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        if [ "$rc" = 137 ]; then
            kills=$((kills + 1))
            if torn "$KD" "$s"; then torn_kills=$((torn_kills + 1)); fi
            p=$(progress "$KD" "$s")
            at[$p]=$((${at[$p]:-0} + 1))
        elif [ "$rc" = 0 ]; then
            # It ended before the kill: a complete run. Check it, and start another round.
            check
            rounds=$((rounds + 1))
            rm -rf "${KD:?}/smoke/$sd" "$KD/smoke/.$sd.resume" "$KD/smoke/.$sd.tmp"
        else
            wedged=$((wedged + 1))
            echo "  run $starts of $s exited with $rc (see $WORK/killed-$s.log)" >&2
        fi
    done
    # The final rerun, never killed, must complete.
    starts=$((starts + 1))
    if run_stage "$KD" "$s" 2>>"$WORK/killed-$s.log"; then
        check
    else
        wedged=$((wedged + 1))
        echo "  the final run of $s exited non-zero (see $WORK/killed-$s.log)" >&2
    fi
    warnings=$(grep -c 'broken checkpoint' "$WORK/killed-$s.log" || true)
    line=$(printf '%-9s kills %d (%d left a checkpoint write unfinished), starts %d, completed runs %d (rounds restarted %d), equal %d, not equal %d, failed/wedged %d, broken-checkpoint fallbacks %d' \
        "$s" "$kills" "$torn_kills" "$starts" "$completed" "$rounds" "$equal" "$unequal" "$wedged" "$warnings")
    summary+=("$line")
    echo "$line"
    spread=""
    for p in $(printf '%s\n' "${!at[@]}" | sort -n); do spread+=" $p:${at[$p]}"; done
    line="$s kills by epochs already checkpointed (epochs:kills):$spread"
    summary+=("$line")
    echo "$line"
    if [ "$kills" -lt "$KILLS" ] || [ "$unequal" -gt 0 ] || [ "$wedged" -gt 0 ] || [ "$completed" -eq 0 ]; then
        fail=1
    fi
done

echo "summary:"
printf '  %s\n' "${summary[@]}"
if [ "$fail" = 0 ]; then
    echo "result: PASS (every rerun completed and equals the uninterrupted run)"
else
    echo "result: FAIL"
fi
exit "$fail"

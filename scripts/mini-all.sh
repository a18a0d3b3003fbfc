#!/usr/bin/env bash
# Pipeline files in miniature (the files given, else every pipelines/*.toml) (`make all MINI=1`, fer_core::mini): the same stages and code
# paths as the real run (pretraining, FERPlus labels, seven classes, tune with reuse_base, the
# report), with sizes, epochs, trials and time limits capped, into artifacts/<name>-mini/.
# The -gpu pipelines run here on the CPU device: same code paths, another device.
# A pipeline that cannot finish fails the script (after the others have run), and its log's
# last lines are printed. Logs: artifacts/mini-logs/<name>.log.
#
# --skip-without-ferplus: skip, with a notice, the pipelines whose labels need FERPlus when
# FERPLUS_DIR has no fer2013new.csv (the GitHub workflow, which has no FERPlus join file).
# .ci/run never passes it.
set -uo pipefail
cd "$(dirname "$0")/.."
skip_ferplus=false
if [ "${1:-}" = "--skip-without-ferplus" ]; then skip_ferplus=true; shift; fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(pipelines/*.toml)
logs=artifacts/mini-logs
mkdir -p "$logs"
failed=()
start=$(date +%s)
for f in "${files[@]}"; do
    name=$(basename "$f" .toml)
    [ "$f" -ef "pipelines/$name.toml" ] || {
        echo "error: $f: not a pipeline file in pipelines/" >&2; failed+=("$f"); continue; }
    if $skip_ferplus && [ ! -f "${FERPLUS_DIR:-data/ferplus}/fer2013new.csv" ] \
        && grep -q '^labels *= *"ferplus"' "$f"; then
        echo "::notice::$name: skipped in miniature (labels = \"ferplus\" and no FERPlus data)"
        continue
    fi
    t=$(date +%s)
    if make --no-print-directory all PIPELINE="$name" MINI=1 >"$logs/$name.log" 2>&1; then
        echo "mini $name: ok in $(( $(date +%s) - t )) s"
    else
        echo "mini $name: FAILED after $(( $(date +%s) - t )) s; the end of $logs/$name.log:" >&2
        tail -15 "$logs/$name.log" >&2
        failed+=("$name")
    fi
done
echo "${#files[@]} pipeline files in miniature: $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "error: these pipelines did not finish in miniature: ${failed[*]}" >&2
    exit 1
fi

#!/usr/bin/env bash
# One fer-tune worker per array task, all in the study FER_TUNE_STUDY names; the artifacts
# folder (preprocess outputs, the search's checkpoints) on a file system every node mounts.
#   export FER_TUNE_STUDY=postgres://fer@db.example/study
#   sbatch --export=ALL,PIPELINE=seed-transfer deploy/slurm/tune-array.sh
#   (with FER_CACHE_URL and PREPROCESS_SIGNATURE exported too: preprocess from the shared cache)
#   target/release/fer-tune --pipeline seed-transfer --finish   # after the array: the outputs
#SBATCH --job-name=fer-tune
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
set -euo pipefail
: "${FER_TUNE_STUDY:?export FER_TUNE_STUDY=postgres://... before sbatch}"
pipeline=${PIPELINE:-seed-transfer}
artifacts=${ARTIFACTS:-$PWD/artifacts}
echo "worker ${SLURM_ARRAY_TASK_ID:-0} of study for ${pipeline} on $(hostname)"
# Optional: the preprocess outputs from the shared run cache, by signature (print it where
# preprocess ran: fer-preprocess --pipeline <name> --print-signature), when the artifacts folder
# is not on a shared file system. The search's checkpoints still need one.
if [ -n "${FER_CACHE_URL:-}" ] && [ -n "${PREPROCESS_SIGNATURE:-}" ]; then
  "${FER_CACHE_BIN:-target/release/fer-cache}" pull --stage preprocess \
    --signature "$PREPROCESS_SIGNATURE" --stage-dir "$artifacts/$pipeline/preprocess" \
    --install "$artifacts/$pipeline/preprocess"
fi
exec "${FER_TUNE_BIN:-target/release/fer-tune}" --worker --pipeline "$pipeline" --artifacts "$artifacts"

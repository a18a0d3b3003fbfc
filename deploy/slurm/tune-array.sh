#!/usr/bin/env bash
# One fer-tune worker per array task, all in the study FER_TUNE_STUDY names.
#   export FER_TUNE_STUDY=postgres://fer@db.example/study
#   sbatch --export=ALL,PIPELINE=seed-transfer deploy/slurm/tune-array.sh
#   target/release/fer-tune --pipeline seed-transfer --finish   # after the array: the outputs
# Either the artifacts folder is on a file system every node mounts (the default, $PWD), or:
#   export FER_TUNE_SHARED=/shared/fer-tune      # the search's checkpoints, on every node
#   export FER_CACHE_URL=s3://bucket/fer-runs    # the shared run cache, and
#   export FER_TUNE_UPSTREAM="$(target/release/fer-tune --pipeline seed-transfer --print-upstream)"
#   (where preprocess ran with FER_CACHE_URL set); each worker then pulls those stages by
#   signature into a node-local artifacts folder (ARTIFACTS, default $TMPDIR/fer-artifacts).
#SBATCH --job-name=fer-tune
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
set -euo pipefail
: "${FER_TUNE_STUDY:?export FER_TUNE_STUDY=postgres://... before sbatch}"
pipeline=${PIPELINE:-seed-transfer}
if [ -n "${FER_TUNE_UPSTREAM:-}" ]; then
  artifacts=${ARTIFACTS:-${TMPDIR:-/tmp}/fer-artifacts}
else
  artifacts=${ARTIFACTS:-$PWD/artifacts}
fi
echo "worker ${SLURM_ARRAY_TASK_ID:-0} of study for ${pipeline} on $(hostname)"
exec "${FER_TUNE_BIN:-target/release/fer-tune}" --worker --pipeline "$pipeline" --artifacts "$artifacts"

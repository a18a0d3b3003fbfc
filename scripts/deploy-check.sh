#!/usr/bin/env bash
# The launch files in deploy/ checked with tools from the package registries: the Kubernetes
# manifests against the Kubernetes schemas (kubernetes-validate, from PyPI, carries them), the
# compose file with `docker-compose config` (Debian's docker-compose), the Slurm script with
# shellcheck (Debian). Installs what is missing when it can (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v shellcheck > /dev/null || need_apt+=(shellcheck)
command -v docker-compose > /dev/null || need_apt+=(docker-compose)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: needs ${need_apt[*]} (apt-get install, as root)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > /dev/null
fi
command -v kubernetes-validate > /dev/null || python3 -m pip install -q kubernetes-validate
kubernetes-validate --strict deploy/kubernetes/*.yaml
docker-compose -f deploy/compose/compose.yaml config --quiet
echo "deploy/compose/compose.yaml: docker-compose config ok"
shellcheck deploy/slurm/tune-array.sh
echo "deploy/slurm/tune-array.sh: shellcheck ok"

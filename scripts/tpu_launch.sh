#!/usr/bin/env bash
# Install diffserial on every worker of a Cloud TPU VM (one host or a pod slice) and start one run there.
#
#   scripts/tpu_launch.sh TPU_NAME ZONE CONFIG WORKDIR [FLAG ...]
#
#   scripts/tpu_launch.sh my-tpu us-central2-b configs/gmm_convergence.py:paper runs/gmm_paper
#   COPY_TO=gs://my-bucket/runs/gmm_paper scripts/tpu_launch.sh my-tpu us-central2-b \
#       configs/gmm_convergence.py:paper runs/gmm_paper --config.n_seeds=1048576
#   scripts/tpu_launch.sh my-tpu us-central2-b configs/gmm_train.py gs://my-bucket/runs/gmm_train
#
# 1. sends the committed tree (git archive HEAD) to ~/diffserial on every worker;
# 2. creates ~/diffserial/.venv once (Python 3.12 through uv; the TPU images ship 3.10) and installs ".[tpu]";
# 3. runs the same command on every worker in the background: train.py for configs/*_train.py, sample.py
#    otherwise, with --distributed and the FLAGs; output in ~/diffserial.log on each worker.
# WORKDIR of sample.py is a path on each worker, relative to ~/diffserial (only process 0 writes it); with
# COPY_TO=gs://..., the worker that wrote it copies it there when the run ends. WORKDIR of train.py may be
# gs://. DRY_RUN=1 prints the commands instead of running them. See TPU.md.

usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Print a command (DRY_RUN=1) or run it.
run() {
  if [[ -n "${DRY_RUN:-}" ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# The shell command that unpacks the tree and installs the environment on a worker.
install_command() {
  cat <<'EOF'
set -e
mkdir -p ~/diffserial && tar -xzf ~/diffserial.tar.gz -C ~/diffserial && cd ~/diffserial
if [ ! -x .venv/bin/python ]; then
  python3 -m pip install --user -q uv && ~/.local/bin/uv venv -q --seed --python 3.12 .venv
fi
.venv/bin/pip install -q -e ".[tpu]"
EOF
}

# The shell command that starts SCRIPT on a worker in the background: launch_command SCRIPT CONFIG WORKDIR [FLAG ...]
launch_command() {
  local script=$1 config=$2 workdir=$3
  shift 3
  local job
  job="cd ~/diffserial && .venv/bin/python $script $(printf '%q ' "--config=$config" "--workdir=$workdir" --distributed "$@")"
  if [[ -n "${COPY_TO:-}" ]]; then
    job+="; rc=\$?; if [ -d $(printf '%q' "$workdir") ]; then"
    job+=" gcloud storage rsync --recursive $(printf '%q %q' "$workdir" "$COPY_TO"); fi; exit \$rc"
  fi
  printf 'nohup bash -c %q > ~/diffserial.log 2>&1 < /dev/null &\n' "$job"
}

main() {
  set -euo pipefail
  [[ $# -ge 4 ]] || usage
  local tpu=$1 zone=$2 config=$3 workdir=$4
  shift 4
  local script=sample.py
  [[ "${config%%:*}" == *_train.py ]] && script=train.py
  if [[ $script == sample.py && $workdir == *://* ]]; then
    echo "sample.py writes WORKDIR with local file I/O: give a path on the workers and COPY_TO=$workdir" >&2
    exit 2
  fi
  local root tarball="${TMPDIR:-/tmp}/diffserial-$$.tar.gz"
  root=$(git rev-parse --show-toplevel)
  trap "rm -f $(printf '%q' "$tarball")" EXIT
  local ssh=(gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all)
  run git -C "$root" archive --format=tar.gz -o "$tarball" HEAD
  run gcloud compute tpus tpu-vm scp "$tarball" "$tpu:diffserial.tar.gz" --zone="$zone" --worker=all
  run "${ssh[@]}" --command="$(install_command)"
  run "${ssh[@]}" --command="$(launch_command "$script" "$config" "$workdir" "$@")"
  echo "started $script on every worker of $tpu; logs: ${ssh[*]} --command='tail -n 5 ~/diffserial.log'"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi

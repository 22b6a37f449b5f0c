#!/bin/sh
# Fine-tune on several GPUs of this machine: ./distributed_train.sh NUM_PROC DATA_DIR [train_imagenet.py options]
# (multi-node: run torchrun yourself with --nnodes/--rdzv options and the same arguments)
# POSIX sh: the original README starts it as `sh distributed_train.sh ...` (dash on Debian/Ubuntu)
set -eu
# NUM_PROC a positive integer and DATA_DIR given: torchrun said 0 with a traceback, and a missing DATA_DIR
# failed in every process, then in torchrun's report of many lines
case "${1:-}" in
  '' | *[!0-9]*) ok=no ;;
  *) if [ "$1" -ge 1 ]; then ok=yes; else ok=no; fi ;;
esac
if [ "$ok" = no ] || [ -z "${2:-}" ]; then
  echo "usage: $0 NUM_PROC DATA_DIR [train_imagenet.py options] (NUM_PROC >= 1)" >&2
  exit 2
fi
NUM_PROC=$1
shift
HERE="$(cd "$(dirname "$0")" && pwd)"
# the active environment's torchrun, else the repository's .venv (the Quickstart never activates it)
if [ -z "${TORCHRUN:-}" ]; then
  if command -v torchrun >/dev/null 2>&1; then TORCHRUN=torchrun
  elif [ -x "$HERE/.venv/bin/torchrun" ]; then TORCHRUN="$HERE/.venv/bin/torchrun"
  else TORCHRUN="python3 -m torch.distributed.run"; fi
fi
exec $TORCHRUN --nproc_per_node "$NUM_PROC" "$HERE/train_imagenet.py" "$@"

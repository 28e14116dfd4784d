#!/usr/bin/env bash
# Runs the README's test command (as CI does) RUNS times back to back in a fresh clone of
# HEAD, optionally with BUSY busy-loop processes beside it, and logs each run's exit code,
# duration, closing lines and whether `git status` stayed clean. This is how a flaky test
# is shown to be gone (issue 11): e.g. `scripts/repeat-test.sh 10 2 /tmp/repeat`.
#   usage: scripts/repeat-test.sh RUNS BUSY LOGDIR
set -u
runs=${1:?runs}; busy=${2:?busy processes}; logdir=${3:?log dir}
clone=$(mktemp -d)/splicegate
git clone -q "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" "$clone"
mkdir -p "$logdir"
pids=()
for _ in $(seq 1 "$busy"); do sh -c 'while :; do :; done' & pids+=($!); done
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT
cd "$clone"
echo "$(git log --oneline -1) busy=$busy" | tee -a "$logdir/summary.txt"
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  CI=true bash .ci/run < /dev/null > "$logdir/run$i.log" 2>&1; rc=$?
  closing=$(grep -E "Test run with|passed|failed" "$logdir/run$i.log" | grep -vE "^\s*(PASSED|FAILED) |✔ (Suite|Test) " | tail -2 | tr '\n' ' ')
  echo "run $i rc=$rc $(( $(date +%s) - start ))s :: $closing" | tee -a "$logdir/summary.txt"
  [ -z "$(git status --porcelain)" ] || echo "run $i: git status not clean" | tee -a "$logdir/summary.txt"
done

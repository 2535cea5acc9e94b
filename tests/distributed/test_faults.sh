#!/bin/bash
# Faults in data-parallel training (run by ctest): a rank that throws, hangs or dies makes
# the job stop with an error naming it, well within the timeout, never a silent hang; a
# checkpoint written before the fault resumes on a fresh launch to the weights of an
# uninterrupted run.  Usage: test_faults.sh MPIEXEC FAULT_WORKER [--show]
set -u
mpiexec=$1
worker=$2
show=${3:-}  # --show prints every job's output
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0

# Runs the worker in mode $1 on ${2:-2} ranks (each attempt bounded, so a hang fails the
# test instead of stalling it); sets $output, $status and $milliseconds.
launch() {
  local start=$(date +%s%N)
  output=$(timeout 150 "$mpiexec" -np "${2:-2}" --oversubscribe --allow-run-as-root "$worker" "$1" \
    "$dir" 2>&1)
  status=$?
  milliseconds=$((($(date +%s%N) - start) / 1000000))
  echo "$1 on ${2:-2} ranks: exit $status after ${milliseconds} ms"
  [ "$show" = --show ] && echo "$output" | sed 's/^/    /'
  return 0
}

expect() {  # expect DESCRIPTION CONDITION
  if eval "$2"; then
    echo "ok: $1"
  else
    echo "FAILED: $1 (exit $status after ${milliseconds} ms)"
    echo "$output" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

launch full
expect "an uninterrupted run trains and checkpoints" \
  '[ $status -eq 0 ] && [ -f "$dir/final.safetensors" ] && [ -f "$dir/epoch1.safetensors" ]'
rm -f "$dir"/epoch*.safetensors

launch throw
expect "a rank that throws stops the others with its error" \
  '[ $status -ne 0 ] && grep -q "rank 0: distributed: rank 1 failed: injected fault" <<<"$output"'
expect "rank 0 checkpointed the epoch before the fault, and nothing after it" \
  '[ -f "$dir/epoch1.safetensors" ] && [ ! -f "$dir/epoch2.safetensors" ]'

launch resume
expect "a fresh launch resumes from it to the uninterrupted weights" \
  '[ $status -eq 0 ] && grep -q "resumed run matches" <<<"$output"'

launch resume 1
expect "any number of ranks can resume from it (here one)" \
  '[ $status -eq 0 ] && grep -q "resumed on 1 rank" <<<"$output"'

export TESSERA_DISTRIBUTED_TIMEOUT=2
launch hang
expect "a rank that hangs is named once the 2 s timeout passes" \
  '[ $status -ne 0 ] && grep -q "rank 1 did not answer" <<<"$output" && [ $milliseconds -lt 60000 ]'

launch kill
expect "a rank that dies ends the job, named by mpirun" \
  '[ $status -ne 0 ] && grep -q "rank 1" <<<"$output" && [ $milliseconds -lt 60000 ]'

exit $((failures > 0))

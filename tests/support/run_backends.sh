#!/usr/bin/env bash
# Run pytest once per Keras backend, each in its own process, all at the same time.
#
#   tests/support/run_backends.sh PYTHON "BACKENDS" [pytest args...]
#
# Much of a backend's run is single-threaded tracing and compiling, so three processes
# share a 2-core machine well (the suite's wall time is about the slowest backend's,
# not the sum). Each backend writes .test-logs/<backend>.log; a line is printed as each
# finishes, then every log in full. Exits non-zero if any backend failed.
set -u
python=$1; backends=$2; shift 2
mkdir -p .test-logs
n_backends=$(echo $backends | wc -w)
if [ "$n_backends" -gt 1 ] && [ -z "${KERAS_KAN_TEST_THREADS:-}" ]; then
  # Three processes on a few cores: one compute thread each. Eager PyTorch and TF's and
  # XLA's thread pools otherwise spin against each other (measured on 2 cores, the
  # L-BFGS and layer tests: PyTorch 393 -> 206 s, TensorFlow 346 -> 256 s, JAX
  # 409 -> 314 s). KERAS_KAN_TEST_THREADS=default keeps each library's own choice.
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false"
fi
echo "=== running the suite on: $backends (in parallel; logs in .test-logs/)"
start=$(date +%s)
for b in $backends; do
  (
    s=$(date +%s)
    KERAS_BACKEND=$b "$python" -m pytest -q "$@" > ".test-logs/$b.log" 2>&1
    rc=$?
    echo "$rc $(( $(date +%s) - s ))" > ".test-logs/$b.status"
    echo "=== $b finished: $(tail -n 1 ".test-logs/$b.log") ($(( $(date +%s) - s )) s)"
  ) &
done
wait
status=0; summary=""
for b in $backends; do
  echo; echo "=== KERAS_BACKEND=$b"; cat ".test-logs/$b.log"
  read -r rc secs < ".test-logs/$b.status"
  [ "$rc" = 0 ] || status=1
  summary="$summary $b ${secs}s (exit $rc);"
done
echo; echo "=== time per backend:$summary wall $(( $(date +%s) - start ))s"
exit $status

#!/bin/sh
# run.sh: builds the libFuzzer targets with clang in their own build folder and fuzzes each for a bounded time.
# Usage: tests/fuzz/run.sh [seconds-per-target] [target…] (default 20 s, every target in tests/fuzz/CMakeLists.txt).
# Targets run two at a time. Exit status non-zero when a fuzzer finds a crash (the input is kept in the build
# folder as <target>-crash-…). A crash found is reproduced with: <build>/tests/fuzz/<target>_fuzz <file>.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${OSVI_FUZZ_BUILD_DIR:-$src/build-fuzz}
seconds=${1:-20}
[ $# -gt 0 ] && shift

CC=${CC:-clang} CXX=${CXX:-clang++}
case "$CXX" in *clang*) ;; *) CC=clang CXX=clang++ ;; esac
CC=$CC CXX=$CXX cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DOSVI_FUZZ=ON -DOSVI_BUILD_BENCH=OFF >/dev/null
if [ $# -gt 0 ]; then targets="$*"; else targets=$(cat "$build/tests/fuzz/targets.txt"); fi
cmake --build "$build" -j"${JOBS:-2}" --target $(for t in $targets; do printf '%s_fuzz ' "$t"; done)

# New inputs go to a scratch corpus so the checked-in seeds stay a handful of readable files.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fuzz_one() {
  t=$1
  mkdir -p "$work/$t"
  dict=""
  [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
  if "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 $dict -artifact_prefix="$build/$t-" "$work/$t" "$here/corpus/$t" \
      >"$work/$t.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -E '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') execs," \
      "$(grep -Eo 'cov: [0-9]+' "$work/$t.log" | tail -1))"
  else
    tail -60 "$work/$t.log"
    echo "fuzz $t: FAILED" >&2
    return 1
  fi
}
status=0
pids=""
n=0
for t in $targets; do
  fuzz_one "$t" &
  pids="$pids $!"
  n=$((n + 1))
  if [ $n -ge 2 ]; then
    for p in $pids; do wait "$p" || status=1; done
    pids=""
    n=0
  fi
done
for p in $pids; do wait "$p" || status=1; done
exit $status

#!/bin/sh
# run-at-parser.sh: builds the AtParser libFuzzer target with clang in its own build folder and fuzzes for a bounded time.
# Usage: tests/fuzz/run-at-parser.sh [seconds] (default 20). Exit status non-zero when the fuzzer finds a crash.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${OSVI_FUZZ_BUILD_DIR:-$src/build-fuzz}
seconds=${1:-20}

CC=${CC:-clang} CXX=${CXX:-clang++}
case "$CXX" in *clang*) ;; *) CC=clang CXX=clang++ ;; esac
CC=$CC CXX=$CXX cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DOSVI_FUZZ=ON -DOSVI_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target at_parser_fuzz -j"${JOBS:-2}"

# New inputs go to a scratch corpus so the checked-in seeds stay a handful of readable files.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/tests/fuzz/at_parser_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -artifact_prefix="$build/" "$work" "$here/corpus/at_parser"

#!/usr/bin/env bash
# Writes daemon/osvid.order: the functions osvid runs from start to idle, which the Release link puts first.
#
# Usage: bench/osvid_text_order.sh BUILD_DIR [OUT]   (needs valgrind; about a minute)
#
# Why: the kernel maps 64 KB of a binary around every page fault, so an idle osvid touching a few functions in
# each room had 4.2 MB of its 5.1 MB of text resident. lld's --symbol-ordering-file packs the listed functions
# together at the start of .text (daemon/CMakeLists.txt), so start-up and idle fault in that region only
# (bench/README.md, "footprint (session 2)"). The list is a profile, not a contract: a function missing from it
# still links and runs, it only costs a page fault in a colder region; names that no longer exist are
# ignored. Regenerate after large changes to start-up or the idle path, from a Release build.
#
# The run: osvid with the embedded default configuration (the shipped rootfs/etc/osvi/osvid.json), a fresh
# state folder, under callgrind; once the API answers, the requests a console or monitor makes to an idle
# box, 20 s idle (timers, the line's polls), then the profile is dumped before SIGTERM, so shut-down code is
# not listed. Every function callgrind saw in osvid's own object is written, mangled, one per line.
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [OUT]}
out=${2:-$(dirname "$0")/../daemon/osvid.order}
osvid=$build/daemon/osvid
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no --callgrind-out-file="$tmp/cg.out" \
  "$osvid" --state-dir "$tmp/state" --listen "127.0.0.1:$port" >"$tmp/log" 2>&1 &
pid=$!
api() { curl -sf -o /dev/null -H "API-Token: $(cat "$tmp/state/api-token")" "http://127.0.0.1:$port$1"; }
for _ in $(seq 1 600); do
  [ -s "$tmp/state/api-token" ] && api /v1/health && break
  sleep 0.1
done
api /v1/health || { cat "$tmp/log" >&2; echo "osvid did not answer under valgrind" >&2; exit 1; }
for path in /v1/health /v1/lines /v1/calls /v1/agents /v1/stats /; do api "$path" || true; done
sleep 20
api /v1/health
callgrind_control --dump "$pid" >/dev/null 2>&1
sleep 1
kill -TERM "$pid"
wait "$pid" || true
pid=
# The first dump file holds start-up to idle (the SIGTERM one, *.2 or the bare name, is ignored).
dump=$(find "$tmp" -maxdepth 1 -name 'cg.out*.1' | head -1)
[ -n "$dump" ] || { ls "$tmp" >&2; echo "no callgrind dump" >&2; exit 1; }
osvid_real=$(readlink -f "$osvid")
awk -v obj="$osvid_real" '
  /^ob=/ { ob = substr($0, 4) }
  /^fn=/ { if (ob == obj) { name = substr($0, 4); if (!(name in seen)) { seen[name] = 1; print name } } }
' "$dump" >"$tmp/order"
n=$(wc -l <"$tmp/order")
[ "$n" -gt 100 ] || { echo "only $n functions found in $dump" >&2; exit 1; }
{
  echo "# Functions osvid runs from start to idle, hot first for the Release link (bench/osvid_text_order.sh)."
  cat "$tmp/order"
} >"$out"
echo "wrote $n functions to $out"

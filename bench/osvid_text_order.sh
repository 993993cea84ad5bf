#!/usr/bin/env bash
# Writes daemon/osvid.order: the functions osvid runs from start to idle, which the Release link puts first.
#
# Usage: bench/osvid_text_order.sh BUILD_DIR [OUT]   (needs valgrind and mosquitto; about two minutes)
#
# Why: the kernel maps 64 KB of a binary around every page fault, so an idle osvid touching a few functions in
# each room had 4.2 MB of its 5.1 MB of text resident. lld's --symbol-ordering-file packs the listed functions
# together at the start of .text (daemon/CMakeLists.txt), so start-up and idle fault in that region only
# (bench/README.md, "footprint (session 2)"). The list is a profile, not a contract: a function missing from it
# still links and runs, it only costs a page fault in a colder region; names that no longer exist are
# ignored. Regenerate after large changes to start-up or the idle path, from a Release build.
#
# The runs: osvid as the unit starts it (--config with the shipped rootfs/etc/osvi/osvid.json; its state folder
# and API port replaced), a fresh state folder, under callgrind; once the API answers, the requests a console
# or monitor makes to an idle box, 20 s idle (timers, the line's polls), then the profile is dumped before
# SIGTERM, so shut-down code is not listed. First with MQTT off (as shipped), then on against a mosquitto on
# loopback: the functions only MQTT runs are appended after the others, so they sit next to the hot region
# without spreading it. Every function callgrind saw in osvid's own object is written, mangled, one per line.
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [OUT]}
src=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$src/daemon/osvid.order}
osvid=$(readlink -f "$build/daemon/osvid")
for tool in valgrind callgrind_control mosquitto python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# profile NAME MQTT_PORT (0: off): appends the functions of this run not listed yet to $tmp/order.
profile() {
  local name=$1 mqtt=$2 dir=$tmp/$1 port pid
  port=$(free_port)
  mkdir -p "$dir"
  python3 - "$src/rootfs/etc/osvi/osvid.json" "$dir" "$port" "$mqtt" <<'EOF'
import json, sys
shipped, folder, port, mqtt = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = json.load(open(shipped))
c["state_dir"] = folder + "/state"
c["api"]["listen"] = "127.0.0.1:" + port
if mqtt:
    c["mqtt"]["enabled"] = True
    c["mqtt"]["port"] = mqtt
json.dump(c, open(folder + "/osvid.json", "w"), indent=2)
EOF
  valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$dir/cg.out" "$osvid" --config "$dir/osvid.json" >"$dir/log" 2>&1 &
  pid=$!
  pids+=("$pid")
  api() { curl -sf -o /dev/null -H "API-Token: $(cat "$dir/state/api-token")" "http://127.0.0.1:$port$1"; }
  for _ in $(seq 1 600); do
    [ -s "$dir/state/api-token" ] && api /v1/health && break
    sleep 0.1
  done
  api /v1/health || { cat "$dir/log" >&2; echo "$name: osvid did not answer under valgrind" >&2; exit 1; }
  for path in /v1/health /v1/lines /v1/calls /v1/agents /v1/stats /; do api "$path" || true; done
  sleep 20
  api /v1/health
  callgrind_control --dump "$pid" >/dev/null 2>&1
  sleep 1
  kill -TERM "$pid"
  wait "$pid" || true
  # The first dump file holds start-up to idle (the one written at exit is ignored).
  local dump
  dump=$(find "$dir" -maxdepth 1 -name 'cg.out*.1' | head -1)
  [ -n "$dump" ] || { ls "$dir" >&2; echo "$name: no callgrind dump" >&2; exit 1; }
  awk -v obj="$osvid" '
    FILENAME == ARGV[1] { seen[$0] = 1; next }
    /^ob=/ { ob = substr($0, 4) }
    /^fn=/ { if (ob == obj) { f = substr($0, 4); if (!(f in seen)) { seen[f] = 1; print f } } }
  ' "$tmp/order" "$dump" >"$tmp/new"
  cat "$tmp/new" >>"$tmp/order"
  echo "$name: $(wc -l <"$tmp/order") functions so far"
}

: >"$tmp/order"
profile shipped 0
broker_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$broker_port" >"$tmp/mosquitto.conf"
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
disown
pids+=("$!")
sleep 0.5
profile mqtt "$broker_port"
n=$(wc -l <"$tmp/order")
[ "$n" -gt 100 ] || { echo "only $n functions found" >&2; exit 1; }
{
  echo "# Functions osvid runs from start to idle, hot first for the Release link (bench/osvid_text_order.sh)."
  cat "$tmp/order"
} >"$out"
echo "wrote $n functions to $out"

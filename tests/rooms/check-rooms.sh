#!/usr/bin/env bash
# check-rooms.sh: prints which daemon rooms include which, and fails when an include breaks the room order.
#
# usage: tests/rooms/check-rooms.sh [SOURCE_DIR]   (default: the tree this script is in)
#
# A room is a folder daemon/<room>/ with public headers in daemon/<room>/include/osvi/<room>/; daemon/tools
# and daemon/main.cpp are the top and may include any room. The order is the one daemon/CMakeLists.txt
# declares with osvi_room(<name> USES osvi_room_<below>...): a room may include the rooms it USES and,
# transitively, what those USE. The compiler already refuses most violations (a room sees only the include
# directories of what it USES), but not an include by relative path ("../config/reader.hpp"), nor one in a
# header that no source of its own room compiles; hence this check.
#
# Fails (exit 1, "FAIL: ..." on stderr, every problem listed) when
#   - a room includes a room that is not below it;
#   - a file includes another room's private header (anything of daemon/<room>/ outside its include/),
#     or names osvi/<room>/<file> that is not a public header of <room>;
#   - the include graph has a cycle;
#   - the rooms on disk and the osvi_room() declarations disagree, or a room USES one declared after it.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "check-rooms: $*"; }

[[ $# -le 1 ]] || { echo "usage: $0 [SOURCE_DIR]" >&2; exit 2; }
src="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)"
daemon="$src/daemon"
cmake="$daemon/CMakeLists.txt"
[[ -f "$cmake" ]] || fail "$cmake missing"

# --- 1. The declared order ----------------------------------------------------------------------------------
declare -a order=()      # rooms, bottom to top, as declared
declare -A below=()      # room -> " a b c " (every room it may include, transitively)
declare -A declared=()
# Comments dropped, lines joined: a declaration may span lines.
mapfile -t decls < <(sed 's/#.*//' "$cmake" | tr '\n' ' ' | grep -oE '(^|[^A-Za-z0-9_])osvi_room\([^)]*\)' |
  sed -E 's/^[^o]*osvi_room\(//; s/\)$//')
[[ ${#decls[@]} -gt 0 ]] || fail "no osvi_room(<name> USES ...) declaration in $cmake"
for d in "${decls[@]}"; do
  read -r -a words <<<"$d"
  name="${words[0]}"
  [[ -z "${declared[$name]:-}" ]] || fail "$cmake declares room '$name' twice"
  set_below=" "
  for w in "${words[@]:1}"; do
    [[ "$w" =~ ^osvi_room_([A-Za-z0-9_]+)$ ]] || continue
    u="${BASH_REMATCH[1]}"
    [[ -n "${declared[$u]:-}" ]] || fail "$cmake: room '$name' USES '$u', which is not declared before it"
    for b in $u ${below[$u]}; do
      [[ "$set_below" == *" $b "* ]] || set_below+="$b "
    done
  done
  declared[$name]=1
  below[$name]="$set_below"
  order+=("$name")
done

# --- 2. The rooms on disk -----------------------------------------------------------------------------------
declare -A is_room=()
for dir in "$daemon"/*/; do
  r="$(basename "$dir")"
  if [[ -d "$dir/include/osvi/$r" ]]; then
    is_room[$r]=1
    [[ -n "${declared[$r]:-}" ]] || fail "daemon/$r has include/osvi/$r/ but no osvi_room($r ...) in $cmake"
  elif [[ "$r" != tools ]] && [[ -n "$(find "$dir" -name '*.[ch]pp' -print -quit)" ]]; then
    # A folder without C++ (daemon/console/assets before its room's code) includes nothing.
    fail "daemon/$r is neither a room (no include/osvi/$r/) nor daemon/tools"
  fi
done
for r in "${order[@]}"; do
  [[ -n "${is_room[$r]:-}" ]] || fail "$cmake declares room '$r' but daemon/$r/include/osvi/$r/ does not exist"
done

# --- 3. What each file includes -----------------------------------------------------------------------------
declare -A edges=()  # "from to" -> first "file:line" seen
problems=()

# Everything below runs in this shell (no command substitution per include), so the check stays fast on a
# loaded build machine.

# normalize PATH: sets $norm to PATH with "." and ".." resolved lexically.
normalize() {
  local -a parts out=()
  local p
  IFS=/ read -r -a parts <<<"$1"
  for p in "${parts[@]}"; do
    case "$p" in
      "" | .) ;;
      ..) [[ ${#out[@]} -eq 0 ]] || unset 'out[${#out[@]}-1]' ;;
      *) out+=("$p") ;;
    esac
  done
  local IFS=/
  norm="/${out[*]}"
}

# room_of PATH: sets $owner to the room (or "top") a normalized path under daemon/ belongs to, else "".
room_of() {
  local rel="${1#"$daemon"/}"
  owner=""
  [[ "$rel" != "$1" ]] || return 0
  case "$rel" in
    main.cpp | tools/*) owner=top ;;
    */*) owner="${rel%%/*}" ;;
  esac
}

# check_include FILE LINE INCLUDE: FILE is a normalized path of a room's (or the top's) source.
check_include() {
  local file="$1" lineno="$2" inc="$3" from to target="" cand roomdir
  room_of "$file"
  from="$owner"
  [[ -n "$from" ]] || return 0
  roomdir="$daemon/$from"
  [[ "$from" != top ]] || roomdir="$daemon/tools"
  local rel="${file#"$src"/}:$lineno"
  if [[ "$inc" =~ ^osvi/([A-Za-z0-9_]+)/ ]] && [[ -n "${is_room[${BASH_REMATCH[1]}]:-}" ]]; then
    to="${BASH_REMATCH[1]}"
    if [[ ! -f "$daemon/$to/include/$inc" ]]; then
      problems+=("$rel includes \"$inc\", which is not a public header of room $to (daemon/$to/include/$inc)")
    fi
  else
    # Resolved as the compiler would: beside the includer, then the room's private include directories
    # (the room folder and the module folders in it). Anything not found is a system or library header.
    for cand in "${file%/*}/$inc" "$roomdir/$inc" "$roomdir"/*/"$inc"; do
      if [[ -f "$cand" ]]; then
        normalize "$cand"
        target="$norm"
        break
      fi
    done
    [[ -n "$target" ]] || return 0
    room_of "$target"
    to="$owner"
    [[ -n "$to" && "$to" != "$from" ]] || return 0
    if [[ "$to" == top ]]; then
      problems+=("$rel includes \"$inc\" from the top (daemon/main.cpp, daemon/tools), which no room may include")
      return 0
    fi
    if [[ "$target" != "$daemon/$to/include/osvi/$to/"* ]]; then
      problems+=("$rel includes \"$inc\", a private header of room $to (${target#"$src"/})")
      return 0
    fi
  fi
  [[ "$to" != "$from" ]] || return 0
  [[ -n "${edges["$from $to"]:-}" ]] || edges["$from $to"]="$rel"
  if [[ "$from" != top && "${below[$from]}" != *" $to "* ]]; then
    problems+=("$rel: room $from includes room $to, which is not below it (see osvi_room($from USES ...) in daemon/CMakeLists.txt)")
  fi
}

mapfile -t files < <(
  dirs=()
  for r in "${order[@]}"; do dirs+=("$daemon/$r"); done
  [[ ! -d "$daemon/tools" ]] || dirs+=("$daemon/tools")
  find "${dirs[@]}" -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' -o -name '*.inc' \)
  [[ ! -f "$daemon/main.cpp" ]] || echo "$daemon/main.cpp"
)
# One awk for every file: "file<TAB>line<TAB>included name".
while IFS=$'\t' read -r f lineno inc; do
  check_include "$f" "$lineno" "$inc"
done < <(awk '/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"][^">]+[">]/ {
                s = $0; sub(/^[^<"]*[<"]/, "", s); sub(/[">].*/, "", s); print FILENAME "\t" FNR "\t" s }' \
           "${files[@]}")

# --- 4. The graph -------------------------------------------------------------------------------------------
note "include graph (room → rooms it includes), bottom to top:"
for r in "${order[@]}" top; do
  tos=()
  for t in "${order[@]}"; do [[ -z "${edges["$r $t"]:-}" ]] || tos+=("$t"); done
  label="$r"
  [[ "$r" != top ]] || label="top (main.cpp, tools)"
  printf '  %-22s → %s\n' "$label" "${tos[*]:-(none)}"
done

# --- 5. Cycles (the order check catches them too, but a cycle is worth naming as such) ----------------------
declare -A color=()  # unset: not seen, 1: on the current path, 2: done
path=()
cycles=()
visit() {
  local r="$1" t i c
  color[$r]=1
  path+=("$r")
  for t in "${order[@]}"; do
    [[ -n "${edges["$r $t"]:-}" ]] || continue
    if [[ "${color[$t]:-}" == 1 ]]; then
      c=""
      for ((i = ${#path[@]} - 1; i >= 0; --i)); do
        c="${path[i]} → $c"
        [[ "${path[i]}" != "$t" ]] || break
      done
      cycles+=("$c$t (${edges["$r $t"]})")
    elif [[ -z "${color[$t]:-}" ]]; then
      visit "$t"
    fi
  done
  unset 'path[${#path[@]}-1]'
  color[$r]=2
}
for r in "${order[@]}"; do [[ -n "${color[$r]:-}" ]] || visit "$r"; done
# The first one is enough to act on: breaking it usually breaks the others.
if [[ ${#cycles[@]} -gt 0 ]]; then
  more=""
  [[ ${#cycles[@]} -eq 1 ]] || more=" ($((${#cycles[@]} - 1)) more)"
  problems+=("the include graph has a cycle: ${cycles[0]}$more")
fi

if [[ ${#problems[@]} -gt 0 ]]; then
  for p in "${problems[@]}"; do echo "FAIL: $p" >&2; done
  exit 1
fi
note "OK: ${#order[@]} rooms, every include goes down the order of daemon/CMakeLists.txt"

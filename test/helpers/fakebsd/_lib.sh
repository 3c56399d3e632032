# Shared code of the fake FreeBSD tools (sourced; not executable on its own).
#
# Environment:
#   BERTH_FAKEBSD_STATE       directory holding the fake host's state (required):
#                             jails, mounts, ifaces, counters
#   BERTH_FAKEBSD_TRANSCRIPT  file each tool appends its argv to, one line per call
#                             (default $BERTH_FAKEBSD_STATE/transcript). Calls made by
#                             berth's run monitor (a node process running monitor.cjs,
#                             which polls jls) go to "<transcript>.monitor" instead, so
#                             the main transcript is deterministic.
#   BERTH_FAKEBSD_FAIL        space-separated failure switches, e.g. "jail-c mount_nullfs":
#                             jail-c jail-c-ghost jail-r jail-R mount_nullfs mount-t umount
#                             ifconfig-create ifconfig-addm jexec
#   BERTH_FAKEBSD_DEFAULT_IFACE  interface of the default route (default em0; empty = none)
#
# Transcript lines: the tool name and its arguments separated by one space; an argument
# with characters outside [A-Za-z0-9_./:=@%+,-] is single-quoted (sh style).

: "${BERTH_FAKEBSD_STATE:?BERTH_FAKEBSD_STATE must name the fake FreeBSD host state dir}"
S=$BERTH_FAKEBSD_STATE
mkdir -p "$S"
[ -f "$S/ifaces" ] || printf 'em0\t\t\nlo0\t\t\nbridge0\t\t\n' > "$S/ifaces"
[ -f "$S/jails" ] || : > "$S/jails"
[ -f "$S/mounts" ] || : > "$S/mounts"
TAB=$(printf '\t')

quote() {
  case $1 in
    '' | *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}

from_monitor() {
  [ -r "/proc/$PPID/cmdline" ] && tr '\0' ' ' < "/proc/$PPID/cmdline" | grep -q -E 'monitor\.(c?js|ts) '
}

# record <tool> <args...>: appends one transcript line
record() {
  _line=$1; shift
  for _a in "$@"; do _line="$_line $(quote "$_a")"; done
  _f=${BERTH_FAKEBSD_TRANSCRIPT:-$S/transcript}
  if from_monitor; then _f=$_f.monitor; fi
  printf '%s\n' "$_line" >> "$_f"
}

# failing <switch>: true when BERTH_FAKEBSD_FAIL names the switch
failing() {
  case " ${BERTH_FAKEBSD_FAIL:-} " in *" $1 "*) return 0 ;; esac
  return 1
}

# replace <file>: atomically replaces <file> with stdin
replace() {
  cat > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}

# next <counter> <start>: prints and advances a counter
next() {
  _n=$(cat "$S/$1" 2>/dev/null || echo "$2")
  echo $((_n + 1)) > "$S/$1"
  echo "$_n"
}

# json_str <s>: s as a JSON string
json_str() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

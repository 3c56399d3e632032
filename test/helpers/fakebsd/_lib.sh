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
#                             bhyve (exits 4 after its checks) bhyve-stall (never comes up)
#                             bhyveload (exits 1)
#                             bhyveload-hang (waits at the loader prompt until killed)
#                             bhyvectl-destroy (exits 1) truncate (exits 1) makefs (exits 1)
#                             kldstat-vmm (the vmm module is not loaded)
#   BERTH_FAKEBSD_DEFAULT_IFACE  interface of the default route (default em0; empty = none)
#   BERTH_FAKEBSD_GUEST       how a fake bhyve guest answers SIGTERM (the ACPI power button):
#                             acpi (default: powers off, bhyve exits 1), acpi2 (only the
#                             second press: needs double_acpi), noacpi (ignores it). The file
#                             $BERTH_FAKEBSD_STATE/guest.<vm> overrides it per VM.
#
# bhyve state (see the bhyve, bhyveload and bhyvectl fakes):
#   vms             one line per vmm instance: name \t state (loaded|running|off) \t pid \t
#                   memory bytes. A running line whose pid is dead is a VM whose bhyve was
#                   killed: the instance stays until bhyvectl --destroy, as on FreeBSD.
#   tapuse          tapN \t pid of the bhyve that has it open
#   dev/            the fake /dev for nmdm(4) pairs: /dev/nmdmXA is $S/dev/nmdmXA (opening
#                   one side creates both, as nmdm clones do; the A file holds the pid of
#                   the process that opened it; gone when bhyve or bhyveload closes it; a
#                   pair whose opener was killed counts as closed, as the kernel closes it)
#   vm.<name>.ctl   write poweroff|reboot|halt|triplefault|error to make the guest end so
#                   (bhyve exits 1|0|2|3|4, bhyve(8) EXIT STATUS)
#   vm.<name>.exits one line per ended bhyve run: its exit status
#   vm.<name>.config the expanded configuration of the last bhyve -k run (key \t value)
#
# Transcript lines: the tool name and its arguments separated by one space; an argument
# with characters outside [A-Za-z0-9_./:=@%+,-] is single-quoted (sh style).

: "${BERTH_FAKEBSD_STATE:?BERTH_FAKEBSD_STATE must name the fake FreeBSD host state dir}"
S=$BERTH_FAKEBSD_STATE
mkdir -p "$S"
[ -f "$S/ifaces" ] || printf 'em0\t\t\nlo0\t\t\nbridge0\t\t\n' > "$S/ifaces"
[ -f "$S/jails" ] || : > "$S/jails"
[ -f "$S/mounts" ] || : > "$S/mounts"
[ -f "$S/vms" ] || : > "$S/vms"
[ -f "$S/tapuse" ] || : > "$S/tapuse"
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

# alive <pid>: true when the process exists
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# vm_get <name> <field>: a field of the vms line of <name> (2 state, 3 pid, 4 memory bytes);
# a running line whose bhyve is dead reads as off
vm_get() {
  _l=$(awk -F '\t' -v n="$1" '$1 == n' "$S/vms")
  [ -n "$_l" ] || return 1
  _st=$(printf '%s' "$_l" | cut -f2)
  _pid=$(printf '%s' "$_l" | cut -f3)
  if [ "$_st" = running ] && ! alive "$_pid"; then _st=off; fi
  case $2 in
    2) printf '%s' "$_st" ;;
    *) printf '%s' "$_l" | cut -f"$2" ;;
  esac
}

# vm_set <name> <state> <pid> <bytes>: writes the vms line of <name>; vm_del <name> drops it
vm_set() {
  { awk -F '\t' -v n="$1" '$1 != n' "$S/vms"; printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; } | replace "$S/vms"
}
vm_del() {
  awk -F '\t' -v n="$1" '$1 != n' "$S/vms" | replace "$S/vms"
}

# devfile <path>: the fake file of a /dev path (nmdm pairs live under $S/dev)
devfile() {
  printf '%s/dev/%s' "$S" "${1#/dev/}"
}

# memsize <arg>: bytes of a bhyve/bhyveload memory size (vmmapi.c vm_parse_memsize: a bare
# number below 1 MiB is megabytes; else a number with one of k m g t); empty when invalid
memsize() {
  case $1 in
    '' | *[!0-9kKmMgGtT]* | *[kKmMgGtT]*[0-9kKmMgGtT]*) return 0 ;;
  esac
  awk -v a="$1" 'BEGIN {
    n = a + 0; u = tolower(substr(a, length(a)))
    if (u ~ /[kmgt]/) { m = index("kmgt", u); for (i = 0; i < m; i++) n *= 1024 }
    else if (n < 1048576) n *= 1048576
    printf "%.0f", n }'
}

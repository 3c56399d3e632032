#!/bin/sh
# env_stop_nfs.sh: berth mnt_stop hook, the counterpart of env_start_nfs.sh.
#
#   env_stop_nfs.sh -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#
# Unmounts, in this order, what env_start_nfs.sh mounts: the fstab dir (MOUNT_FSTAB=1), the
# sysdir, the data dir. Only a mount from the expected source <server>:<root>/<kind>/<jname>
# is unmounted; a directory that is not mounted is skipped (idempotent), one mounted from
# elsewhere is left alone with a warning. The shared rcconf mount (MOUNT_RCCONF=1) is never
# unmounted: other envs use it.
# An unmount that fails is retried once, then forced (umount -f; an NFS server that is gone
# otherwise blocks it). The mount points are never entered (that could hang on a dead server).
#
# Same configuration file as env_start_nfs.sh: $BERTH_HOOK_CONF, else env_start_nfs.conf next
# to this script (owned by root, not writable by group or others).
#
# Exit codes: 0 ok (everything expected is unmounted); 2 usage; 1 something is still mounted
# or the configuration is bad.

set -u
PROG=${0##*/}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() { log "usage: $PROG -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>"; exit 2; }

data='' fstab='' jname='' sysdir=''
while getopts 'd:f:j:r:s:' opt; do
	case $opt in
	d) data=$OPTARG ;;
	f) fstab=$OPTARG ;;
	j) jname=$OPTARG ;;
	r) : ;;
	s) sysdir=$OPTARG ;;
	*) usage ;;
	esac
done
[ -n "$data" ] || { log "missing -d <data>"; usage; }
[ -n "$jname" ] || { log "missing -j <jname>"; usage; }
[ -n "$sysdir" ] || { log "missing -s <sysdir>"; usage; }
case $jname in
*/* | .* | '') log "bad jname '$jname'"; exit 2 ;;
esac

conf=${BERTH_HOOK_CONF:-$(dirname -- "$0")/env_start_nfs.conf}
[ -r "$conf" ] || { log "cannot read config $conf (copy env_start_nfs.conf there, or set BERTH_HOOK_CONF)"; exit 1; }
if [ -z "$(find "$conf" -prune -user 0 ! -perm -020 ! -perm -002 2>/dev/null)" ]; then
	log "refusing config $conf: it must be owned by root and not writable by group or others"
	exit 1
fi
NFS_SERVER='' NFS_SERVER_ROOT_DIR='/nfs' MOUNT_FSTAB=0 NFS_MOUNT_TIMEOUT=10
# shellcheck source=/dev/null
. "$conf"
[ -n "$NFS_SERVER" ] || { log "NFS_SERVER is not set in $conf"; exit 1; }
case $NFS_MOUNT_TIMEOUT in '' | *[!0-9]*) log "NFS_MOUNT_TIMEOUT must be a number of seconds, not '$NFS_MOUNT_TIMEOUT'"; exit 1 ;; esac
root=${NFS_SERVER_ROOT_DIR%/}
[ -n "$fstab" ] || MOUNT_FSTAB=0

canon() {
	_cp=$(cd -- "$(dirname -- "$1")" 2>/dev/null && pwd -P) || return 1
	printf '%s/%s\n' "${_cp%/}" "$(basename -- "$1")"
}

mounted_source() {
	mount | awk -v d="$1" '$2 == "on" && $3 == d { s = $1 } END { if (s != "") print s }'
}

CUR_PID=''
timed() {
	if [ "$NFS_MOUNT_TIMEOUT" -gt 0 ] && command -v timeout >/dev/null 2>&1; then
		timeout "$NFS_MOUNT_TIMEOUT" "$@" &
	else
		"$@" &
	fi
	CUR_PID=$!
	wait "$CUR_PID"
	_trc=$?
	CUR_PID=''
	return "$_trc"
}

# shellcheck disable=SC2317  # called from the EXIT trap
stop_current() {
	if [ -n "$CUR_PID" ]; then
		kill -TERM "$CUR_PID" 2>/dev/null
		wait "$CUR_PID" 2>/dev/null
		CUR_PID=''
	fi
}
trap 'stop_current' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

failed=0
# umount_one SRC DIR
umount_one() {
	_src=$1
	_dst=$(canon "$2") || { log "$2: parent directory missing, nothing mounted there"; return 0; }
	_cur=$(mounted_source "$_dst")
	if [ -z "$_cur" ]; then
		log "$_dst: not mounted, skipped"
		return 0
	fi
	if [ "$_cur" != "$_src" ]; then
		log "warning: $_dst is mounted from $_cur, not $_src: left alone"
		return 0
	fi
	log "unmounting $_dst ($_src)"
	timed umount "$_dst" && return 0
	sleep 1
	[ "$(mounted_source "$_dst")" = "$_src" ] || return 0
	timed umount "$_dst" && return 0
	log "unmount of $_dst failed; forcing it"
	timed umount -f "$_dst"
	if [ "$(mounted_source "$_dst")" = "$_src" ]; then
		log "error: $_dst is still mounted from $_src"
		failed=1
	fi
}

log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): unmounting what came from $NFS_SERVER:$root"
[ "$MOUNT_FSTAB" = 1 ] && umount_one "$NFS_SERVER:$root/fstab/$jname" "$fstab"
umount_one "$NFS_SERVER:$root/system/$jname" "$sysdir"
umount_one "$NFS_SERVER:$root/data/$jname" "$data"
[ "$failed" -eq 0 ] || exit 1
log "done"
exit 0

#!/bin/sh
# env_start_nfs.sh: berth mnt_start hook that mounts one environment's directories from an
# NFSv4 server.
#
#   env_start_nfs.sh -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#
# Mounts, in this order (server layout <root>/{data,system,fstab,rcconf}):
#   <server>:<root>/data/<jname>    on <data>
#   <server>:<root>/system/<jname>  on <sysdir>
#   <server>:<root>/fstab/<jname>   on <fstab dir>        (MOUNT_FSTAB=1)
#   <server>:<root>/rcconf          on <rcconf dir>       (MOUNT_RCCONF=1; shared by all
#                                                          envs, never unmounted by the stop hook)
# FreeBSD: mount_nfs -o <opts>; Linux: mount -t nfs4 -o <opts>.
#
# Idempotent: a directory already mounted from the same source is skipped; one mounted from
# another source is an error (nothing is stacked on it). Every mount is checked after it
# returns. If anything fails (or the hook is killed by SIGTERM/SIGINT/SIGHUP, as berth does
# on timeout), what this run mounted is unmounted again before it exits non-zero.
# With BERTH_ACTION=create or clone and NFS_CREATE_DIRS=1, the per-env directories are first
# created on the server through a temporary mount of <server>:<root>.
#
# Configuration: the file named by $BERTH_HOOK_CONF, else env_start_nfs.conf next to this
# script. It is sourced as sh, so it must be owned by root and not writable by group or
# others; the hook refuses it otherwise. See README.md in this directory.
#
# Exit codes: 0 ok; 2 usage; 1 configuration or other error; otherwise the failing mount
# command's exit code (124 when NFS_MOUNT_TIMEOUT cut it off).

set -u
PROG=${0##*/}
umask 022

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() { log "usage: $PROG -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>"; exit 2; }

data='' fstab='' jname='' rcconf='' sysdir=''
while getopts 'd:f:j:r:s:' opt; do
	case $opt in
	d) data=$OPTARG ;;
	f) fstab=$OPTARG ;;
	j) jname=$OPTARG ;;
	r) rcconf=$OPTARG ;;
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

# --- configuration -------------------------------------------------------------------
conf=${BERTH_HOOK_CONF:-$(dirname -- "$0")/env_start_nfs.conf}
[ -r "$conf" ] || { log "cannot read config $conf (copy env_start_nfs.conf there, or set BERTH_HOOK_CONF)"; exit 1; }
# The config is sourced by root: refuse it unless root owns it and nobody else can write it.
if [ -z "$(find "$conf" -prune -user 0 ! -perm -020 ! -perm -002 2>/dev/null)" ]; then
	log "refusing config $conf: it must be owned by root and not writable by group or others"
	exit 1
fi
NFS_SERVER='' NFS_SERVER_ROOT_DIR='/nfs' MOUNT_RCCONF=0 MOUNT_FSTAB=0 MOUNT_NFS_OPT='' NFS_MOUNT_TIMEOUT=10 NFS_CREATE_DIRS=1
# shellcheck source=/dev/null
. "$conf"
[ -n "$NFS_SERVER" ] || { log "NFS_SERVER is not set in $conf"; exit 1; }
case $NFS_MOUNT_TIMEOUT in '' | *[!0-9]*) log "NFS_MOUNT_TIMEOUT must be a number of seconds, not '$NFS_MOUNT_TIMEOUT'"; exit 1 ;; esac
root=${NFS_SERVER_ROOT_DIR%/}
[ -n "$fstab" ] || MOUNT_FSTAB=0
[ -n "$rcconf" ] || MOUNT_RCCONF=0

OS=$(uname -s)
# Options: a comma list given to -o. CBSD-style "-orw -overs=4 ..." is accepted too.
opts=''
for o in $MOUNT_NFS_OPT; do
	o=${o#-o}
	[ -n "$o" ] && opts=${opts:+$opts,}$o
done
if [ -z "$opts" ]; then
	case $OS in
	FreeBSD) opts='rw,nfsv4,hard,tcp,rsize=32768,wsize=32768,acregmax=3,acdirmin=3,acdirmax=3' ;;
	*) opts='rw,vers=4,hard,proto=tcp,rsize=32768,wsize=32768,acregmax=3,acdirmin=3,acdirmax=3' ;;
	esac
fi

# --- helpers -------------------------------------------------------------------------
# canon DIR: DIR with its parent resolved (never enters DIR itself: a dead NFS mount there
# would hang the hook)
canon() {
	_cp=$(cd -- "$(dirname -- "$1")" 2>/dev/null && pwd -P) || return 1
	printf '%s/%s\n' "${_cp%/}" "$(basename -- "$1")"
}

# mounted_source DIR: the source of the (last) mount on DIR, or nothing
mounted_source() {
	mount | awk -v d="$1" '$2 == "on" && $3 == d { s = $1 } END { if (s != "") print s }'
}

# timed CMD...: runs CMD (under timeout(1) when NFS_MOUNT_TIMEOUT > 0) in the background and
# waits for it. A signal to the hook (berth's timeout) then interrupts the wait at once, and
# the exit trap stops CMD: GNU timeout(1) moves itself into a process group of its own, so
# berth's SIGTERM to the hook's group does not reach it.
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

nfs_mount() { # SRC DST
	case $OS in
	FreeBSD) timed mount_nfs -o "$opts" "$1" "$2" ;;
	*) timed mount -t nfs4 -o "$opts" "$1" "$2" ;;
	esac
}

MOUNTED=''   # what this run mounted, newest first, one per line
TMPMNT=''    # temporary mount of the server root (create/clone)
CUR_PID=''   # the mount command running now
CUR_SRC='' CUR_DST=''  # the mount being made now

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	if [ -n "$CUR_PID" ]; then
		kill -TERM "$CUR_PID" 2>/dev/null
		wait "$CUR_PID" 2>/dev/null
		CUR_PID=''
		# the interrupted mount may have completed
		if [ -n "$CUR_DST" ] && [ "$(mounted_source "$CUR_DST")" = "$CUR_SRC" ]; then
			MOUNTED="$CUR_DST
$MOUNTED"
		fi
	fi
	if [ -n "$TMPMNT" ]; then
		umount "$TMPMNT" 2>/dev/null || umount -f "$TMPMNT" 2>/dev/null
		rmdir "$TMPMNT" 2>/dev/null
		TMPMNT=''
	fi
	[ "$rc" -eq 0 ] && return 0
	[ -n "$MOUNTED" ] || return 0
	log "undoing the mounts of this run"
	printf '%s\n' "$MOUNTED" | while IFS= read -r m; do
		[ -n "$m" ] || continue
		log "unmounting $m"
		umount "$m" || umount -f "$m" || log "could not unmount $m"
	done
	MOUNTED=''
}
rc=0
trap 'rc=$?; cleanup' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { # CODE MESSAGE
	_fc=$1
	shift
	log "error: $*"
	exit "$_fc"
}

# mount_one SRC DST: mount SRC on DST unless it already is
mount_one() {
	_src=$1
	mkdir -p "$2" || fail 1 "cannot create mount point $2"
	_dst=$(canon "$2") || fail 1 "cannot resolve $2"
	_cur=$(mounted_source "$_dst")
	if [ "$_cur" = "$_src" ]; then
		log "$_dst: already mounted from $_src, skipped"
		return 0
	fi
	[ -z "$_cur" ] || fail 1 "$_dst is already mounted from $_cur, not $_src; refusing to mount over it"
	log "mounting $_src on $_dst"
	CUR_SRC=$_src CUR_DST=$_dst
	nfs_mount "$_src" "$_dst"
	_rc=$?
	CUR_SRC='' CUR_DST=''
	[ "$_rc" -eq 0 ] || fail "$_rc" "mount of $_src on $_dst failed (exit $_rc)"
	_cur=$(mounted_source "$_dst")
	if [ "$_cur" != "$_src" ]; then
		fail 1 "mount of $_src on $_dst returned 0 but $_dst is ${_cur:+mounted from $_cur}${_cur:-not mounted}"
	fi
	MOUNTED="$_dst
$MOUNTED"
}

# create_dirs: make <root>/{data,system[,fstab]}/<jname> (and <root>/rcconf) on the server
create_dirs() {
	TMPMNT=$(mktemp -d "${TMPDIR:-/tmp}/berth-hook-nfs.XXXXXX") || fail 1 "mktemp failed"
	log "creating the directories of $jname on $NFS_SERVER:$root"
	nfs_mount "$NFS_SERVER:$root" "$TMPMNT"
	_rc=$?
	[ "$_rc" -eq 0 ] || fail "$_rc" "temporary mount of $NFS_SERVER:$root failed (exit $_rc)"
	[ "$(mounted_source "$(canon "$TMPMNT")")" = "$NFS_SERVER:$root" ] || fail 1 "temporary mount of $NFS_SERVER:$root did not happen"
	mkdir -p "$TMPMNT/data/$jname" "$TMPMNT/system/$jname" || fail 1 "cannot create directories on $NFS_SERVER:$root"
	if [ "$MOUNT_FSTAB" = 1 ]; then mkdir -p "$TMPMNT/fstab/$jname" || fail 1 "cannot create $root/fstab/$jname"; fi
	if [ "$MOUNT_RCCONF" = 1 ]; then mkdir -p "$TMPMNT/rcconf" || fail 1 "cannot create $root/rcconf"; fi
	umount "$TMPMNT" || fail 1 "cannot unmount the temporary mount $TMPMNT"
	rmdir "$TMPMNT"
	TMPMNT=''
}

# --- main ----------------------------------------------------------------------------
log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): data $data, system $sysdir from $NFS_SERVER:$root"
case ${BERTH_ACTION:-} in
create | clone) [ "$NFS_CREATE_DIRS" = 1 ] && create_dirs ;;
esac
mount_one "$NFS_SERVER:$root/data/$jname" "$data"
mount_one "$NFS_SERVER:$root/system/$jname" "$sysdir"
[ "$MOUNT_FSTAB" = 1 ] && mount_one "$NFS_SERVER:$root/fstab/$jname" "$fstab"
[ "$MOUNT_RCCONF" = 1 ] && mount_one "$NFS_SERVER:$root/rcconf" "$rcconf"
log "done"
exit 0

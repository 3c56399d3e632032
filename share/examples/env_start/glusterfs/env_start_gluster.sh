#!/bin/sh
# env_start_gluster.sh: berth mnt_start hook that mounts one environment's directories as
# sub-directory mounts of ONE GlusterFS volume (GlusterFS >= 3.12 subdir mounts).
#
#   env_start_gluster.sh -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#
# Volume layout (<rootdir> is GLUSTER_ROOT_DIR, empty by default):
#   <volume><rootdir>/data/<jname>    mounted on <data>
#   <volume><rootdir>/system/<jname>  mounted on <sysdir>
#   <volume><rootdir>/fstab/<jname>   mounted on <fstab dir>   (MOUNT_FSTAB=1)
# each as  mount -t glusterfs [-o <opts>] <server>:/<volume><rootdir>/<kind>/<jname> <dir>
# (Linux; on FreeBSD mount_glusterfs from the net/glusterfs port, untested).
#
# Sub-directories: a subdir mount needs the directory to exist on the volume. With
# BERTH_ACTION=create or clone and GLUSTER_CREATE_DIRS=1 (default) the hook first creates
# them through a temporary mount of the whole volume (on a mktemp -d directory, unmounted and
# removed at once), so this node must be allowed to mount the whole volume. Otherwise create
# <rootdir>/{data,system,fstab}/<jname> on the volume yourself before jcreate. For start,
# register, remove ... a missing sub-directory is an error (the env does not exist there).
#
# Idempotent: a directory already mounted from the same source is skipped; one mounted from
# another source is an error. mount.glusterfs may exit 0 although nothing got mounted (e.g. a
# missing sub-directory), so every mount is checked in the mount table afterwards. If anything
# fails (or the hook is killed by SIGTERM/SIGINT/SIGHUP, as berth does on timeout), what this
# run mounted is unmounted again before it exits non-zero. The FUSE client daemon each mount
# starts is meant to outlive the hook (berth does not kill it).
#
# Configuration: the file named by $BERTH_HOOK_CONF, else env_start_gluster.conf next to
# this script. It is sourced as sh, so it must be owned by root and not writable by group or
# others; the hook refuses it otherwise. See README.md in this directory.
#
# Exit codes: 0 ok; 2 usage; 1 configuration or other error; otherwise the failing mount
# command's exit code (124 when GLUSTER_MOUNT_TIMEOUT cut it off).

set -u
PROG=${0##*/}
umask 022

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

# --- configuration -------------------------------------------------------------------
conf=${BERTH_HOOK_CONF:-$(dirname -- "$0")/env_start_gluster.conf}
[ -r "$conf" ] || { log "cannot read config $conf (copy env_start_gluster.conf there, or set BERTH_HOOK_CONF)"; exit 1; }
# The config is sourced by root: refuse it unless root owns it and nobody else can write it.
if [ -z "$(find "$conf" -prune -user 0 ! -perm -020 ! -perm -002 2>/dev/null)" ]; then
	log "refusing config $conf: it must be owned by root and not writable by group or others"
	exit 1
fi
GLUSTER_SERVER='' GLUSTER_BACKUP_SERVERS='' GLUSTER_VOLUME='' GLUSTER_ROOT_DIR='' MOUNT_FSTAB=0
MOUNT_GLUSTER_OPT='' GLUSTER_MOUNT_TIMEOUT=30 GLUSTER_CREATE_DIRS=1
# shellcheck source=/dev/null
. "$conf"
[ -n "$GLUSTER_SERVER" ] || { log "GLUSTER_SERVER is not set in $conf"; exit 1; }
[ -n "$GLUSTER_VOLUME" ] || { log "GLUSTER_VOLUME is not set in $conf"; exit 1; }
case $GLUSTER_MOUNT_TIMEOUT in '' | *[!0-9]*) log "GLUSTER_MOUNT_TIMEOUT must be a number of seconds, not '$GLUSTER_MOUNT_TIMEOUT'"; exit 1 ;; esac
rootdir=${GLUSTER_ROOT_DIR%/}
case $rootdir in '' | /*) ;; *) rootdir=/$rootdir ;; esac
vol="$GLUSTER_SERVER:/$GLUSTER_VOLUME"
[ -n "$fstab" ] || MOUNT_FSTAB=0

OS=$(uname -s)
opts=$MOUNT_GLUSTER_OPT
[ -n "$GLUSTER_BACKUP_SERVERS" ] && opts=${opts:+$opts,}backup-volfile-servers=$GLUSTER_BACKUP_SERVERS

# --- helpers -------------------------------------------------------------------------
# canon DIR: DIR with its parent resolved (never enters DIR itself: a dead mount there
# would hang the hook)
canon() {
	_cp=$(cd -- "$(dirname -- "$1")" 2>/dev/null && pwd -P) || return 1
	printf '%s/%s\n' "${_cp%/}" "$(basename -- "$1")"
}

# mounted_source DIR: the source of the (last) mount on DIR, or nothing
mounted_source() {
	mount | awk -v d="$1" '$2 == "on" && $3 == d { s = $1 } END { if (s != "") print s }'
}

# timed CMD...: runs CMD (under timeout(1) when GLUSTER_MOUNT_TIMEOUT > 0) in the background and
# waits for it. A signal to the hook (berth's timeout) then interrupts the wait at once, and
# the exit trap stops CMD: GNU timeout(1) moves itself into a process group of its own, so
# berth's SIGTERM to the hook's group does not reach it.
timed() {
	if [ "$GLUSTER_MOUNT_TIMEOUT" -gt 0 ] && command -v timeout >/dev/null 2>&1; then
		timeout "$GLUSTER_MOUNT_TIMEOUT" "$@" &
	else
		"$@" &
	fi
	CUR_PID=$!
	wait "$CUR_PID"
	_trc=$?
	CUR_PID=''
	return "$_trc"
}

gl_mount() { # SRC DST
	_gs=$1 _gd=$2
	case $OS in
	FreeBSD) set -- mount_glusterfs ;;
	*) set -- mount -t glusterfs ;;
	esac
	[ -n "$opts" ] && set -- "$@" -o "$opts"
	timed "$@" "$_gs" "$_gd"
}

MOUNTED=''   # what this run mounted, newest first, one per line
TMPMNT=''    # temporary mount of the whole volume (create/clone)
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
	gl_mount "$_src" "$_dst"
	_rc=$?
	CUR_SRC='' CUR_DST=''
	[ "$_rc" -eq 0 ] || fail "$_rc" "mount of $_src on $_dst failed (exit $_rc)"
	_cur=$(mounted_source "$_dst")
	if [ "$_cur" != "$_src" ]; then
		fail 1 "mount of $_src on $_dst returned 0 but $_dst is ${_cur:+mounted from $_cur}${_cur:-not mounted} (does that sub-directory exist on the volume? see GLUSTER_CREATE_DIRS)"
	fi
	MOUNTED="$_dst
$MOUNTED"
}

# create_dirs: make <rootdir>/{data,system[,fstab]}/<jname> on the volume
create_dirs() {
	TMPMNT=$(mktemp -d "${TMPDIR:-/tmp}/berth-hook-gluster.XXXXXX") || fail 1 "mktemp failed"
	log "creating the sub-directories of $jname on $vol$rootdir (temporary mount on $TMPMNT)"
	_t=$(canon "$TMPMNT")
	gl_mount "$vol" "$TMPMNT"
	_rc=$?
	[ "$_rc" -eq 0 ] || fail "$_rc" "temporary mount of $vol failed (exit $_rc)"
	[ "$(mounted_source "$_t")" = "$vol" ] || fail 1 "temporary mount of $vol on $TMPMNT did not happen"
	mkdir -p "$TMPMNT$rootdir/data/$jname" "$TMPMNT$rootdir/system/$jname" || fail 1 "cannot create directories on $vol"
	if [ "$MOUNT_FSTAB" = 1 ]; then mkdir -p "$TMPMNT$rootdir/fstab/$jname" || fail 1 "cannot create $rootdir/fstab/$jname on $vol"; fi
	timed umount "$TMPMNT" || fail 1 "cannot unmount the temporary mount $TMPMNT"
	rmdir "$TMPMNT"
	TMPMNT=''
}

# --- main ----------------------------------------------------------------------------
log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): data $data, system $sysdir from $vol$rootdir"
case ${BERTH_ACTION:-} in
create | clone) [ "$GLUSTER_CREATE_DIRS" = 1 ] && create_dirs ;;
esac
mount_one "$vol$rootdir/data/$jname" "$data"
mount_one "$vol$rootdir/system/$jname" "$sysdir"
[ "$MOUNT_FSTAB" = 1 ] && mount_one "$vol$rootdir/fstab/$jname" "$fstab"
log "done"
exit 0

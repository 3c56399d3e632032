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
# created on the server through a temporary mount of <server>:<root>. With BERTH_ACTION=rename
# (jrename: -j the new name, BERTH_OLD_JNAME the old one) they are renamed there first, through
# the same temporary mount (those already renamed are skipped).
#
# Configuration: the file named by $BERTH_HOOK_CONF, else env_start_nfs.conf next to this
# script. It is sourced as sh, so it must be owned by root and not writable by group or
# others; the hook refuses it otherwise. See README.md in this directory.
#
# Built on the examples' shared sh library berth-hook.sh (next to this script, else in
# ../lib/; it must be owned by root and not writable by group or others, like the config).
#
# Exit codes: 0 ok; 2 usage; 1 configuration or other error; otherwise the failing mount
# command's exit code (124 when NFS_MOUNT_TIMEOUT cut it off).

PROG=${0##*/}
# this script's own directory (through symlinks: berth runs clone_script by a link to it)
BH_DIR=$(dirname -- "$(readlink -f -- "$0" 2>/dev/null || printf '%s' "$0")")
# The shared library of the example hooks: next to this script, else in ../lib/. Sourced by
# root, so refused unless root owns it and nobody else can write it.
BH_LIB=$BH_DIR/berth-hook.sh
[ -f "$BH_LIB" ] || BH_LIB=$BH_DIR/../lib/berth-hook.sh
[ -r "$BH_LIB" ] || { printf '%s: cannot read %s (copy lib/berth-hook.sh of the examples next to this script)\n' "$PROG" "$BH_LIB" >&2; exit 1; }
if [ -z "$(find "$BH_LIB" -prune -user 0 ! -perm -020 ! -perm -002 2>/dev/null)" ]; then
	printf '%s: refusing library %s: it must be owned by root and not writable by group or others\n' "$PROG" "$BH_LIB" >&2
	exit 1
fi
# shellcheck source-path=SCRIPTDIR source=../lib/berth-hook.sh
. "$BH_LIB"

bh_args "$@"
NFS_SERVER='' NFS_SERVER_ROOT_DIR='/nfs' MOUNT_RCCONF=0 MOUNT_FSTAB=0 MOUNT_NFS_OPT='' NFS_MOUNT_TIMEOUT=10 NFS_CREATE_DIRS=1
bh_conf env_start_nfs.conf
bh_need NFS_SERVER
bh_seconds NFS_MOUNT_TIMEOUT
BH_TIMEOUT=$NFS_MOUNT_TIMEOUT
root=${NFS_SERVER_ROOT_DIR%/}
[ -n "$fstab" ] || MOUNT_FSTAB=0
[ -n "$rcconf" ] || MOUNT_RCCONF=0

OS=$BH_OS
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

do_mount() { # SRC DIR
	case $OS in
	FreeBSD) bh_run mount_nfs -o "$opts" "$1" "$2" ;;
	*) bh_run mount -t nfs4 -o "$opts" "$1" "$2" ;;
	esac
}

bh_start
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): data $data, system $sysdir from $NFS_SERVER:$root"
case ${BERTH_ACTION:-} in
create | clone)
	if [ "$NFS_CREATE_DIRS" = 1 ]; then
		bh_log "creating the directories of $jname on $NFS_SERVER:$root"
		bh_tmp_mount "$NFS_SERVER:$root" berth-hook-nfs
		mkdir -p "$BH_TMPMNT/data/$jname" "$BH_TMPMNT/system/$jname" || bh_fail 1 "cannot create directories on $NFS_SERVER:$root"
		if [ "$MOUNT_FSTAB" = 1 ]; then mkdir -p "$BH_TMPMNT/fstab/$jname" || bh_fail 1 "cannot create $root/fstab/$jname"; fi
		if [ "$MOUNT_RCCONF" = 1 ]; then mkdir -p "$BH_TMPMNT/rcconf" || bh_fail 1 "cannot create $root/rcconf"; fi
		bh_tmp_umount
	fi
	;;
rename)
	# jrename: <root>/{data,system[,fstab]}/<old> become .../<new> on the server first
	bh_renaming
	bh_tmp_mount "$NFS_SERVER:$root" berth-hook-nfs
	if [ "$MOUNT_FSTAB" = 1 ]; then bh_rename_dirs "$BH_TMPMNT" data system fstab; else bh_rename_dirs "$BH_TMPMNT" data system; fi
	bh_tmp_umount
	;;
esac
bh_mount "$NFS_SERVER:$root/data/$jname" "$data"
bh_mount "$NFS_SERVER:$root/system/$jname" "$sysdir"
[ "$MOUNT_FSTAB" = 1 ] && bh_mount "$NFS_SERVER:$root/fstab/$jname" "$fstab"
[ "$MOUNT_RCCONF" = 1 ] && bh_mount "$NFS_SERVER:$root/rcconf" "$rcconf"
bh_mount_all
bh_log "done"
exit 0

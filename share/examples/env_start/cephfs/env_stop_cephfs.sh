#!/bin/sh
# env_stop_cephfs.sh: berth mnt_stop hook, the counterpart of env_start_cephfs.sh.
#
#   env_stop_cephfs.sh -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#
# Unmounts, all at once, what env_start_cephfs.sh mounts for the env: the fstab dir
# (MOUNT_FSTAB=1), the sysdir, the data dir, whether made in subdir or bind mode. Only a mount
# from the expected source is unmounted; a directory that is not mounted is skipped
# (idempotent), one mounted from elsewhere is left alone with a warning. A failed unmount is
# retried after 1 s, then forced (umount -f). The node's mount of bind mode stays. The mount
# points are never entered.
#
# Same configuration file as env_start_cephfs.sh. Built on ../lib/berth-hook.sh.
#
# Exit codes: 0 ok (everything expected is unmounted); 2 usage; 1 something is still mounted
# or the configuration is bad.

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
# shellcheck disable=SC2034  # the defaults; the stop hook needs only some
CEPH_MONITORS='' CEPH_CONF_FILE='' CEPHFS_NAME='' CEPHFS_ROOT='' CEPH_CLIENT_ID='' CEPH_KEYRING='' \
	MOUNT_FSTAB=0 MOUNT_CEPH_OPT='' CEPHFS_CLIENT=auto CEPHFS_MOUNT_MODE=subdir \
	CEPHFS_BASE_DIR=/var/run/berth-cephfs CEPHFS_MOUNT_TIMEOUT=30 CEPHFS_CREATE_DIRS=1
bh_conf env_start_cephfs.conf
bh_need CEPH_MONITORS CEPHFS_NAME CEPHFS_ROOT CEPH_CLIENT_ID
bh_seconds CEPHFS_MOUNT_TIMEOUT
case $CEPHFS_MOUNT_MODE in subdir | bind) ;; *) bh_log "CEPHFS_MOUNT_MODE must be subdir or bind, not '$CEPHFS_MOUNT_MODE'"; exit 1 ;; esac
case $CEPHFS_CLIENT in auto | fuse | kernel) ;; *) bh_log "CEPHFS_CLIENT must be auto, fuse or kernel, not '$CEPHFS_CLIENT'"; exit 1 ;; esac
case $CEPHFS_ROOT in /*) ;; *) bh_log "CEPHFS_ROOT must be an absolute path in the file system, not '$CEPHFS_ROOT'"; exit 1 ;; esac
BH_TIMEOUT=$CEPHFS_MOUNT_TIMEOUT BH_PARALLEL=1 BH_MOUNTINFO=1
root=${CEPHFS_ROOT%/}
base=${CEPHFS_BASE_DIR%/}/${CEPHFS_NAME}_$CEPH_CLIENT_ID
[ -n "$fstab" ] || MOUNT_FSTAB=0
kinds="data system"
[ "$MOUNT_FSTAB" = 1 ] && kinds="$kinds fstab"

client=$CEPHFS_CLIENT
if [ "$client" = auto ]; then
	client=fuse
	if grep -qw ceph /proc/filesystems 2>/dev/null && command -v mount.ceph >/dev/null 2>&1; then client=kernel; fi
fi
# src PATH: how a mount of PATH (in the file system) shows in the mount table
src() { if [ "$client" = kernel ]; then printf '%s' "$CEPH_MONITORS:$1"; else printf '%s' "ceph:$CEPHFS_NAME:$1"; fi; }
# keys KIND: sets sk (subdir form) and bk (bind form) of KIND/<jname>; either form is taken as
# mounted, so a change of CEPHFS_MOUNT_MODE needs no restart of the envs
rootsrc=$(src "$root")
keys() {
	sk=$(src "$root/$1/$jname")
	if [ "$BH_OS" = FreeBSD ]; then bk=$base/$1/$jname; else bk="${rootsrc}[/$1/$jname]"; fi
}

bh_stop
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): unmounting what came from $CEPHFS_NAME:$root"
[ "$MOUNT_FSTAB" = 1 ] && keys fstab && bh_umount "$sk" "$fstab" "$bk"
keys system && bh_umount "$sk" "$sysdir" "$bk"
keys data && bh_umount "$sk" "$data" "$bk"
bh_umount_all
bh_log "done"
exit 0

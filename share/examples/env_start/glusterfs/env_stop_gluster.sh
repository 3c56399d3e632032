#!/bin/sh
# env_stop_gluster.sh: berth mnt_stop hook, the counterpart of env_start_gluster.sh.
#
#   env_stop_gluster.sh -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#
# Unmounts, in this order, what env_start_gluster.sh mounts: the fstab dir (MOUNT_FSTAB=1),
# the sysdir, the data dir. Only a mount from the expected source
# <server>:/<volume><rootdir>/<kind>/<jname> is unmounted; a directory that is not mounted is
# skipped (idempotent), one mounted from elsewhere is left alone with a warning. Unmounting
# ends the FUSE client daemon of that mount. An unmount that fails is retried once, then
# forced (umount -f). The mount points are never entered (that could hang on a dead mount).
#
# Same configuration file as env_start_gluster.sh: $BERTH_HOOK_CONF, else
# env_start_gluster.conf next to this script (owned by root, not writable by group or others).
#
# Built on the examples' shared sh library berth-hook.sh (next to this script, else in
# ../lib/; it must be owned by root and not writable by group or others, like the config).
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
GLUSTER_SERVER='' GLUSTER_VOLUME='' GLUSTER_ROOT_DIR='' MOUNT_FSTAB=0 GLUSTER_MOUNT_TIMEOUT=30
GLUSTER_MOUNT_MODE=subdir GLUSTER_BASE_DIR=/var/run/berth-glusterfs
bh_conf env_start_gluster.conf
bh_need GLUSTER_SERVER GLUSTER_VOLUME
bh_seconds GLUSTER_MOUNT_TIMEOUT
case $GLUSTER_MOUNT_MODE in subdir | bind) ;; *) bh_log "GLUSTER_MOUNT_MODE must be subdir or bind, not '$GLUSTER_MOUNT_MODE'"; exit 1 ;; esac
BH_TIMEOUT=$GLUSTER_MOUNT_TIMEOUT BH_PARALLEL=1 BH_MOUNTINFO=1
rootdir=${GLUSTER_ROOT_DIR%/}
case $rootdir in '' | /*) ;; *) rootdir=/$rootdir ;; esac
vol="$GLUSTER_SERVER:/$GLUSTER_VOLUME"
base=${GLUSTER_BASE_DIR%/}/${GLUSTER_SERVER}_$GLUSTER_VOLUME
[ -n "$fstab" ] || MOUNT_FSTAB=0
OS=$BH_OS
kinds="data system"
[ "$MOUNT_FSTAB" = 1 ] && kinds="$kinds fstab"

# The two ways a sub-directory KIND/<jname> of the volume shows in the mount table: its own
# FUSE mount (subdir), or a bind mount from the node's mount of the volume (bind). Either is
# accepted as mounted, so a change of GLUSTER_MOUNT_MODE needs no restart of running envs.
# keys KIND: sets sk (subdir form) and bk (bind form)
keys() {
	sk=$vol$rootdir/$1/$jname
	if [ "$OS" = FreeBSD ]; then bk=$base$rootdir/$1/$jname; else bk="${vol}[$rootdir/$1/$jname]"; fi
}

bh_stop
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): unmounting what came from $vol$rootdir"
[ "$MOUNT_FSTAB" = 1 ] && keys fstab && bh_umount "$sk" "$fstab" "$bk"
keys system && bh_umount "$sk" "$sysdir" "$bk"
keys data && bh_umount "$sk" "$data" "$bk"
bh_umount_all
bh_log "done"
exit 0

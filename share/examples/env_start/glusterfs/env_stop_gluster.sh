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
BH_DIR=$(dirname -- "$0")
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
bh_conf env_start_gluster.conf
bh_need GLUSTER_SERVER GLUSTER_VOLUME
bh_seconds GLUSTER_MOUNT_TIMEOUT
BH_TIMEOUT=$GLUSTER_MOUNT_TIMEOUT
rootdir=${GLUSTER_ROOT_DIR%/}
case $rootdir in '' | /*) ;; *) rootdir=/$rootdir ;; esac
vol="$GLUSTER_SERVER:/$GLUSTER_VOLUME"
[ -n "$fstab" ] || MOUNT_FSTAB=0

bh_stop
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): unmounting what came from $vol$rootdir"
[ "$MOUNT_FSTAB" = 1 ] && bh_umount "$vol$rootdir/fstab/$jname" "$fstab"
bh_umount "$vol$rootdir/system/$jname" "$sysdir"
bh_umount "$vol$rootdir/data/$jname" "$data"
bh_umount_all
bh_log "done"
exit 0

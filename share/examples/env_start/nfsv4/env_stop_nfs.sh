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
NFS_SERVER='' NFS_SERVER_ROOT_DIR='/nfs' MOUNT_FSTAB=0 NFS_MOUNT_TIMEOUT=10
bh_conf env_start_nfs.conf
bh_need NFS_SERVER
bh_seconds NFS_MOUNT_TIMEOUT
BH_TIMEOUT=$NFS_MOUNT_TIMEOUT
root=${NFS_SERVER_ROOT_DIR%/}
[ -n "$fstab" ] || MOUNT_FSTAB=0

bh_stop
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): unmounting what came from $NFS_SERVER:$root"
[ "$MOUNT_FSTAB" = 1 ] && bh_umount "$NFS_SERVER:$root/fstab/$jname" "$fstab"
bh_umount "$NFS_SERVER:$root/system/$jname" "$sysdir"
bh_umount "$NFS_SERVER:$root/data/$jname" "$data"
bh_umount_all
bh_log "done"
exit 0

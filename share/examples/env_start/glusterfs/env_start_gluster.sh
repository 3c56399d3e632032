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
# (GLUSTER_MOUNT_MODE=subdir, the default; the three at once), or bind-mounted from this node's
# one mount of the whole volume on $GLUSTER_BASE_DIR/<server>_<volume>, which stays mounted
# (GLUSTER_MOUNT_MODE=bind). Linux; on FreeBSD mount_glusterfs from the net/glusterfs port and
# nullfs, untested.
#
# Sub-directories: a subdir mount needs the directory to exist on the volume. With
# BERTH_ACTION=create or clone and GLUSTER_CREATE_DIRS=1 (default) the hook first creates
# them through a temporary mount of the whole volume (on a mktemp -d directory, unmounted and
# removed at once), so this node must be allowed to mount the whole volume. Otherwise create
# <rootdir>/{data,system,fstab}/<jname> on the volume yourself before jcreate. For start,
# register, remove ... a missing sub-directory is an error (the env does not exist there).
# With BERTH_ACTION=rename (jrename; -j is the new name, BERTH_OLD_JNAME the old one) the hook
# first renames <rootdir>/{data,system[,fstab]}/<old> to .../<new> on the volume (through the
# same temporary mount, or the node's mount in bind mode; those already renamed are skipped),
# then mounts the new ones.
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
# Built on the examples' shared sh library berth-hook.sh (next to this script, else in
# ../lib/; it must be owned by root and not writable by group or others, like the config).
#
# Exit codes: 0 ok; 2 usage; 1 configuration or other error; otherwise the failing mount
# command's exit code (124 when GLUSTER_MOUNT_TIMEOUT cut it off).

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
GLUSTER_SERVER='' GLUSTER_BACKUP_SERVERS='' GLUSTER_VOLUME='' GLUSTER_ROOT_DIR='' MOUNT_FSTAB=0
MOUNT_GLUSTER_OPT='' GLUSTER_MOUNT_TIMEOUT=30 GLUSTER_CREATE_DIRS=1
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

opts=$MOUNT_GLUSTER_OPT
[ -n "$GLUSTER_BACKUP_SERVERS" ] && opts=${opts:+$opts,}backup-volfile-servers=$GLUSTER_BACKUP_SERVERS

do_mount() { # SRC DIR
	case $OS in
	FreeBSD) set -- mount_glusterfs ${opts:+-o "$opts"} "$1" "$2" ;;
	*) set -- mount -t glusterfs ${opts:+-o "$opts"} "$1" "$2" ;;
	esac
	bh_run "$@"
}
BH_NOT_MOUNTED_HINT='does that sub-directory exist on the volume? see GLUSTER_CREATE_DIRS'

# mkdirs DIR: creates <rootdir>/{data,system[,fstab]}/<jname> under DIR, a mount of the volume
mkdirs() {
	bh_log "creating the sub-directories of $jname on $vol$rootdir (through $1)"
	for k in $kinds; do
		mkdir -p "$1$rootdir/$k/$jname" || bh_fail 1 "cannot create $rootdir/$k/$jname on $vol"
	done
}

bh_start
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): data $data, system $sysdir from $vol$rootdir ($GLUSTER_MOUNT_MODE mounts)"
create=0
case ${BERTH_ACTION:-} in create | clone) create=$GLUSTER_CREATE_DIRS ;; esac
if [ "$GLUSTER_MOUNT_MODE" = bind ]; then
	bh_base_mount "$vol" "$base"
	[ "$create" = 1 ] && mkdirs "$base"
	# shellcheck disable=SC2086  # $kinds: one word each
	if bh_renaming; then bh_rename_dirs "$base$rootdir" $kinds; fi
	for k in $kinds; do
		[ -d "$base$rootdir/$k/$jname" ] || bh_fail 1 "$rootdir/$k/$jname does not exist on $vol (the env is not on this volume; see GLUSTER_CREATE_DIRS)"
	done
else
	if [ "$create" = 1 ]; then
		bh_tmp_mount "$vol" berth-hook-gluster
		mkdirs "$BH_TMPMNT"
		bh_tmp_umount
	elif bh_renaming; then
		bh_tmp_mount "$vol" berth-hook-gluster
		# shellcheck disable=SC2086  # $kinds: one word each
		bh_rename_dirs "$BH_TMPMNT$rootdir" $kinds
		bh_tmp_umount
	fi
fi
set -- "$data" "$sysdir" "$fstab"
for k in $kinds; do
	keys "$k"
	if [ "$GLUSTER_MOUNT_MODE" = bind ]; then
		bh_bind "$bk" "$base$rootdir/$k/$jname" "$1" "$sk"
	else
		bh_mount "$sk" "$1" "$bk"
	fi
	shift
done
bh_mount_all
bh_log "done"
exit 0

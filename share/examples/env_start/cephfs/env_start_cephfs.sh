#!/bin/sh
# env_start_cephfs.sh: berth mnt_start hook that mounts one environment's directories from
# CephFS, one sub-directory per env.
#
#   env_start_cephfs.sh -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#
# Layout in the file system CEPHFS_NAME (<root> is CEPHFS_ROOT):
#   <root>/data/<jname>    mounted on <data>
#   <root>/system/<jname>  mounted on <sysdir>
#   <root>/fstab/<jname>   mounted on <fstab dir>   (MOUNT_FSTAB=1)
# each (CEPHFS_MOUNT_MODE=subdir, the default; the three at once) by
#   ceph-fuse -m <monitors> --id <client id> -k <keyring> --client_fs=<fs> -r <path> <dir>
# or, where the kernel has the ceph file system (CEPHFS_CLIENT=auto|kernel),
#   mount -t ceph <monitors>:<path> <dir> -o name=<client id>,secretfile=...,mds_namespace=<fs>
# (the hook says which it uses); or bind-mounted from this node's one mount of <root> on
# $CEPHFS_BASE_DIR/<fs>_<client id>, which stays mounted (CEPHFS_MOUNT_MODE=bind).
# ceph-fuse mounts are named ceph:<fs>:<path> in the mount table (-o fsname=).
#
# Sub-directories: with BERTH_ACTION=create or clone and CEPHFS_CREATE_DIRS=1 (default) the
# hook first creates them through a mount of <root> (with BERTH_ACTION=rename, jrename, it
# renames <root>/<kind>/<BERTH_OLD_JNAME> to <root>/<kind>/<jname> there first); for other actions a missing one is an
# error (the env is not on this file system). <root> itself must exist.
#
# Idempotent and all-or-nothing like every example hook (see ../lib/berth-hook.sh). A wrong
# key or monitor makes ceph-fuse retry until client_mount_timeout (CEPHFS_MOUNT_TIMEOUT less
# two seconds): the hook then fails, saying which of the two it was, with nothing mounted.
#
# Configuration: the file named by $BERTH_HOOK_CONF, else env_start_cephfs.conf next to this
# script (owned by root, not writable by group or others); the keyring must be owned by root
# and readable by root only. See README.md in this directory.
#
# Built on the examples' shared sh library berth-hook.sh (next to this script, else in
# ../lib/; it must be owned by root and not writable by group or others, like the config).
#
# Exit codes: 0 ok; 2 usage; 1 configuration or other error; otherwise the failing mount
# command's exit code (124 when CEPHFS_MOUNT_TIMEOUT cut it off).

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

[ -n "$CEPH_KEYRING" ] || { bh_log "CEPH_KEYRING is not set in $conf"; exit 1; }
[ -r "$CEPH_KEYRING" ] || { bh_log "cannot read keyring $CEPH_KEYRING (CEPH_KEYRING in $conf)"; exit 1; }
if ! bh_root_only "$CEPH_KEYRING" || [ -n "$(find "$CEPH_KEYRING" -prune \( -perm -040 -o -perm -004 \) 2>/dev/null)" ]; then
	bh_log "refusing keyring $CEPH_KEYRING: it must be owned by root and readable by root only (chmod 0600)"
	exit 1
fi

# ceph-fuse gives up a little before timeout(1) would kill it, so that it says why
cmt=''
[ "$CEPHFS_MOUNT_TIMEOUT" -gt 0 ] && cmt=$((CEPHFS_MOUNT_TIMEOUT > 4 ? CEPHFS_MOUNT_TIMEOUT - 2 : CEPHFS_MOUNT_TIMEOUT))
secret=''
do_mount() { # PATH DIR (PATH: in the file system)
	if [ "$client" = kernel ]; then
		if [ -z "$secret" ]; then
			secret=$(mktemp "${TMPDIR:-/tmp}/berth-hook-ceph.XXXXXX") || bh_fail 1 "mktemp failed"
			awk '$1 == "key" { print $3; exit }' "$CEPH_KEYRING" >"$secret"
		fi
		bh_run mount -t ceph "$CEPH_MONITORS:$1" "$2" -o "name=$CEPH_CLIENT_ID,secretfile=$secret,mds_namespace=$CEPHFS_NAME${MOUNT_CEPH_OPT:+,$MOUNT_CEPH_OPT}"
	else
		bh_run ceph-fuse -c "${CEPH_CONF_FILE:-/dev/null}" -m "$CEPH_MONITORS" --id "$CEPH_CLIENT_ID" -k "$CEPH_KEYRING" \
			--client_fs="$CEPHFS_NAME" ${cmt:+--client_mount_timeout="$cmt"} -r "$1" \
			-o "fsname=$(src "$1"),subtype=ceph-fuse${MOUNT_CEPH_OPT:+,$MOUNT_CEPH_OPT}" "$2"
	fi
}
BH_CAPTURE=1
# bh_explain RC OUTPUT: the cause of a failed mount, from the client's output
bh_explain() {
	if [ "$1" -eq 124 ]; then printf ': no answer within %ss (monitors %s)' "$CEPHFS_MOUNT_TIMEOUT" "$CEPH_MONITORS"; return 0; fi
	[ -n "$2" ] && [ -f "$2" ] || return 0
	if grep -q 'handle_auth_bad_method\|AUTH_FAILED\|auth: error\|bad secret\|Permission denied' "$2"; then
		printf ': the monitors refused the key of client.%s in %s (cephx: a wrong key, or no such client)' "$CEPH_CLIENT_ID" "$CEPH_KEYRING"
	elif grep -q 'non-allowable root\|Operation not permitted' "$2"; then
		printf ': client.%s may not mount that path (its MDS caps do not allow it; see ceph fs authorize in README.md)' "$CEPH_CLIENT_ID"
	elif grep -q 'No such file or directory' "$2"; then
		printf ': that path does not exist in the file system %s' "$CEPHFS_NAME"
	elif grep -q 'failed to fetch mon config\|hunting\|timed out\|connection refused' "$2"; then
		printf ': no monitor answered at %s (CEPH_MONITORS; is the cluster up?)' "$CEPH_MONITORS"
	fi
}
BH_NOT_MOUNTED_HINT='does that sub-directory exist? see CEPHFS_CREATE_DIRS'

mkdirs() { # DIR: a mount of <root>
	bh_log "creating the sub-directories of $jname under $CEPHFS_NAME:$root (through $1)"
	for k in $kinds; do
		mkdir -p "$1/$k/$jname" || bh_fail 1 "cannot create $root/$k/$jname in $CEPHFS_NAME"
	done
}

bh_start
trap 'BH_RC=$?; [ -z "$secret" ] || rm -f "$secret"; bh_undo' EXIT
case $client in
kernel) how='the kernel client (mount -t ceph)' ;;
*) how='ceph-fuse'; [ "$CEPHFS_CLIENT" = auto ] && how="$how (the kernel has no ceph file system)" ;;
esac
bh_log "env $jname (action ${BERTH_ACTION:-none}, node ${BERTH_NODE:-?}): data $data, system $sysdir from $CEPHFS_NAME:$root as client.$CEPH_CLIENT_ID through $how ($CEPHFS_MOUNT_MODE mounts)"
create=0
case ${BERTH_ACTION:-} in create | clone) create=$CEPHFS_CREATE_DIRS ;; esac
if [ "$CEPHFS_MOUNT_MODE" = bind ]; then
	bh_base_mount "$rootsrc" "$base" "$root"
	[ "$create" = 1 ] && mkdirs "$base"
	# shellcheck disable=SC2086  # $kinds: one word each
	if bh_renaming; then bh_rename_dirs "$base" $kinds; fi
	for k in $kinds; do
		[ -d "$base/$k/$jname" ] || bh_fail 1 "$root/$k/$jname does not exist in $CEPHFS_NAME (the env is not on this file system; see CEPHFS_CREATE_DIRS)"
	done
elif [ "$create" = 1 ]; then
	bh_tmp_mount "$rootsrc" berth-hook-cephfs "$root"
	mkdirs "$BH_TMPMNT"
	bh_tmp_umount
elif bh_renaming; then
	bh_tmp_mount "$rootsrc" berth-hook-cephfs "$root"
	# shellcheck disable=SC2086  # $kinds: one word each
	bh_rename_dirs "$BH_TMPMNT" $kinds
	bh_tmp_umount
fi
set -- "$data" "$sysdir" "$fstab"
for k in $kinds; do
	keys "$k"
	if [ "$CEPHFS_MOUNT_MODE" = bind ]; then
		bh_bind "$bk" "$base/$k/$jname" "$1" "$sk"
	else
		bh_mount "$sk" "$1" "$bk" "$root/$k/$jname"
	fi
	shift
done
bh_mount_all
bh_log "done"
exit 0

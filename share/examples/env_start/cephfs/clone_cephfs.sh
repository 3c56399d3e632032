#!/bin/sh
# clone_cephfs.sh: berth clone hook for envs on CephFS (set clone_script=<this file> on the env,
# or put it in jails-system/<jname>/clone-local.d/). berth runs it during `jclone old= new=`
# with both envs' storage mounted (their mnt_start hooks, e.g. env_start_cephfs.sh) and the
# source env stopped, with $data (the source's data dir) and $newdata (the new env's, empty).
#
# What it does (CEPHFS_CLONE_FROM=snapshot, the default): takes a CephFS snapshot of the
# source's data dir (mkdir $data/.snap/<name>, instant and read-only), copies the snapshot into
# $newdata (cp -a: modes, owners, times, links; GNU cp uses copy_file_range), and removes the
# snapshot. With CEPHFS_CLONE_FROM=live it copies the source's live tree instead (berth keeps the
# source stopped during jclone). CephFS has no writable copy-on-write clone of a directory, so
# either is a full copy of the data through this node's client. See README.md for the cost.
#
# Configuration: CEPHFS_CLONE_FROM in the hooks' config ($BERTH_HOOK_CONF, else
# env_start_cephfs.conf next to this script; root-owned, not group/other writable). Built on
# ../lib/berth-hook.sh (found and checked like by the mount hooks).
#
# The node's cephx key needs the 's' flag to make snapshots (ceph fs authorize ... rws), and
# the file system must allow them (ceph fs set <fs> allow_new_snaps true).
#
# Exit codes: 0 ok; 1 the snapshot or the copy failed (the snapshot is removed again, and berth
# removes what was copied).

set -u
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

log() { bh_log "$@"; }
CEPHFS_CLONE_FROM=snapshot
bh_conf env_start_cephfs.conf
case $CEPHFS_CLONE_FROM in snapshot | live) ;; *) log "CEPHFS_CLONE_FROM must be snapshot or live, not '$CEPHFS_CLONE_FROM'"; exit 1 ;; esac

data=${data:-} newdata=${newdata:-}
if [ -z "$data" ] || [ -z "$newdata" ]; then log "data and newdata are not set: this hook is run by berth jclone"; exit 1; fi
new=${newjname:-${BERTH_NEW_JNAME:-new}}
case $new in */* | .* | '') log "bad new jname '$new'"; exit 1 ;; esac
mkdir -p "$newdata" || exit 1

if [ "$CEPHFS_CLONE_FROM" = live ]; then
	# berth runs clone hooks with the source env stopped: its live tree is one instant already
	log "copying $data to $newdata (CEPHFS_CLONE_FROM=live)"
	cp -a "$data/." "$newdata/" || { log "error: copying $data to $newdata failed"; exit 1; }
	log "done"
	exit 0
fi

snap=$data/.snap/berth-clone-$new
# a snapshot left by an earlier clone that was killed: remove it first
[ -d "$snap" ] && rmdir "$snap"
if ! mkdir "$snap"; then
	log "error: cannot snapshot $data (is it on CephFS? does the node's key have the 's' flag: ceph fs authorize <fs> client.<id> <path> rws? are snapshots allowed: ceph fs set <fs> allow_new_snaps true?)"
	exit 1
fi
trap 'rmdir "$snap" 2>/dev/null || log "warning: could not remove the snapshot $snap"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
log "snapshot $snap made; copying it to $newdata"
cp -a "$snap/." "$newdata/" || { log "error: copying $snap to $newdata failed"; exit 1; }
log "done"
exit 0

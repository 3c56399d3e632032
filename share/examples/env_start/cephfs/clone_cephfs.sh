#!/bin/sh
# clone_cephfs.sh: berth clone hook for envs on CephFS (set clone_script=<this file> on the env,
# or put it in jails-system/<jname>/clone-local.d/). berth runs it during `jclone old= new=`
# with both envs' storage mounted (their mnt_start hooks, e.g. env_start_cephfs.sh) and the
# source env stopped, with $data (the source's data dir) and $newdata (the new env's, empty).
#
# What it does: takes a CephFS snapshot of the source's data dir (mkdir $data/.snap/<name>,
# instant and read-only), copies the snapshot into $newdata (cp -a: modes, owners, times,
# links; GNU cp uses copy_file_range), and removes the snapshot. CephFS has no writable
# copy-on-write clone of a directory, so this is a full copy of the data through this node's
# client; the snapshot makes it a copy of one instant. See README.md for what it costs.
#
# The node's cephx key needs the 's' flag to make snapshots (ceph fs authorize ... rws), and
# the file system must allow them (ceph fs set <fs> allow_new_snaps true).
#
# Exit codes: 0 ok; 1 the snapshot or the copy failed (the snapshot is removed again, and berth
# removes what was copied).

set -u
PROG=${0##*/}
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

data=${data:-} newdata=${newdata:-}
if [ -z "$data" ] || [ -z "$newdata" ]; then log "data and newdata are not set: this hook is run by berth jclone"; exit 1; fi
new=${newjname:-${BERTH_NEW_JNAME:-new}}
case $new in */* | .* | '') log "bad new jname '$new'"; exit 1 ;; esac

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
mkdir -p "$newdata" || exit 1
cp -a "$snap/." "$newdata/" || { log "error: copying $snap to $newdata failed"; exit 1; }
log "done"
exit 0

# shellcheck shell=sh disable=SC2034  # sourced by the example hooks; they use what it sets
# berth-hook.sh: the shared part of berth's example storage hooks (mnt_start / mnt_stop), so
# that a backend's hook only says how to mount one directory. POSIX sh (dash, FreeBSD sh).
#
# A hook finds this file next to itself, else in ../lib/ beside its own directory, and sources
# it only when it is owned by root and not writable by group or others (root runs it); see
# any of the example hooks for those six lines.
#
# What it gives (every name it defines starts with bh_ / BH_, except the arguments):
#   bh_args "$@"            parses -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>
#                           into $data $fstab $jname $rcconf $sysdir (-d, -j, -s required; a jname
#                           with / or a leading dot refused); exit 2 on a usage error
#   bh_conf NAME            sources the config: $BERTH_HOOK_CONF, else NAME next to the hook
#                           ($BH_DIR); refused (exit 1) unless owned by root and not group/other
#                           writable; its path is then in $conf
#   bh_need VAR...          exit 1 unless each VAR is set (non-empty) in the config
#   bh_seconds VAR          exit 1 unless VAR is a whole number of seconds
#   BH_TIMEOUT              seconds one mount or unmount may take (timeout(1); 0 = no limit of its
#                           own: berth's mnt_timeout still bounds the whole hook)
#   BH_PARALLEL             1: the mounts of one bh_mount_all (and the unmounts of one
#                           bh_umount_all) run at once; 0 (default): one after the other
#   bh_log MSG / bh_fail CODE MSG
#   bh_run CMD...           for the hook's do_mount: starts CMD (under timeout(1)) in the
#                           background; the library waits for it and reads its exit code
#   bh_timed CMD...         runs CMD under timeout(1) and waits for it
#   BH_CAPTURE=1            the output of each mount command goes to a file of its own first
#                           (then to the log), so that the hook's bh_explain RC FILE, when it
#                           defines one, can add the cause to the failure message
#   bh_mounted_source DIR   the source of the (last) mount on DIR, or nothing: from `mount`,
#                           or with BH_MOUNTINFO=1 (Linux) from /proc/self/mountinfo, where a
#                           bind mount of a sub-directory shows as SOURCE[/sub/dir]
#
# mnt_start side (bh_start first: traps that undo this run's mounts when it fails or gets
# SIGTERM/SIGINT/SIGHUP, as berth sends on mnt_timeout):
#   the hook defines  do_mount SRC DIR  that calls bh_run once with its mount command;
#   bh_mount SRC DIR [ALT [ARG]]  queues "mount SRC on DIR" by do_mount ARG DIR (ARG: SRC unless
#                           given; ALT: another source that counts as SRC, e.g. the form an
#                           earlier setting of the hook mounted);
#   bh_base_mount SRC DIR [ARG]  mounts SRC (by do_mount ARG) on DIR now unless it already is, for the whole node: every
#                           env's bind mounts come from it and it stays mounted (the hooks never
#                           unmount it); serialised by flock(1) on DIR.lock; a mount there that
#                           no longer answers (its client died) is detached and made anew
#   bh_bind KEY PATH DIR [ALT]  queues the bind mount of PATH (inside a base mount) on DIR; KEY is
#                           how the mount table shows it (BH_MOUNTINFO=1: SOURCE[/sub/dir])
#   bh_mount_all            mounts what was queued: a DIR already mounted from SRC is skipped, one
#                           mounted from anything else is refused before anything is mounted;
#                           each mount is checked in the mount table after it returns
#                           (a mount(8) helper can exit 0 without mounting); on any failure what
#                           this run mounted is unmounted and the hook exits non-zero
#                           (the failing mount's code, 124 on timeout, 1 when refused);
#                           BH_NOT_MOUNTED_HINT is added to the "returned 0 but" message
#   bh_tmp_mount SRC PREFIX [ARG]  mounts SRC (by do_mount ARG) on a fresh mktemp -d directory
#                           $BH_TMPMNT (PREFIX.XXXXXX)
#   bh_tmp_umount           unmounts and removes it (the exit trap does so too)
#   bh_renaming             true when BERTH_ACTION=rename (jrename): then $old_jname is the old
#                           name (BERTH_OLD_JNAME, checked like -j) and $jname the new one
#   bh_rename_dirs DIR KIND...  with BERTH_ACTION=rename: renames DIR/KIND/<old> to DIR/KIND/<new>
#                           for each KIND (DIR: a mount of the volume); one already renamed (old
#                           gone, new there) is skipped, so a rename cut short can be run again;
#                           exit 1 when neither exists or both do. The same call with the names
#                           swapped undoes it (berth's rollback does that).
# mnt_stop side (bh_stop first):
#   bh_umount SRC DIR [ALT] queues "unmount DIR if it is mounted from SRC (or ALT)";
#   bh_umount_all           unmounts what was queued (a DIR not mounted is skipped, one mounted
#                           from elsewhere left alone with a warning; a failed unmount is retried
#                           after 1 s, then forced with umount -f) and exits 1 if any is still
#                           mounted.
# Mount points are never entered (a dead server there would hang the hook).

set -u
umask 022
BH_TIMEOUT=0
BH_PARALLEL=0
BH_MOUNTINFO=0
BH_NOT_MOUNTED_HINT=''
BH_TMPMNT=''
BH_QUEUE=''     # queued "KIND<tab>KEY<tab>DIR<tab>ARG<tab>ALT" lines (m: do_mount ARG, b: bind ARG)
BH_JOBS=''      # commands running now: "PID<tab>KIND<tab>SRC<tab>DIR" lines
BH_MOUNTED=''   # what this run mounted, newest first, one per line
BH_TAB=$(printf '\t')
BH_NL='
'
BH_OS=$(uname -s)
BH_KIND=- BH_SRC=- BH_DST=-
BH_CAPTURE=0 BH_OUTDIR='' BH_NJOB=0 BH_LASTOUT=''

bh_log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

bh_fail() { # CODE MESSAGE
	_bh_fc=$1
	shift
	bh_log "error: $*"
	exit "$_bh_fc"
}

bh_usage() {
	bh_log "usage: $PROG -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>"
	exit 2
}

bh_args() {
	data='' fstab='' jname='' rcconf='' sysdir=''
	OPTIND=1
	while getopts 'd:f:j:r:s:' _bh_opt; do
		case $_bh_opt in
		d) data=$OPTARG ;;
		f) fstab=$OPTARG ;;
		j) jname=$OPTARG ;;
		r) rcconf=$OPTARG ;;
		s) sysdir=$OPTARG ;;
		*) bh_usage ;;
		esac
	done
	[ -n "$data" ] || { bh_log "missing -d <data>"; bh_usage; }
	[ -n "$jname" ] || { bh_log "missing -j <jname>"; bh_usage; }
	[ -n "$sysdir" ] || { bh_log "missing -s <sysdir>"; bh_usage; }
	case $jname in
	*/* | .* | '') bh_log "bad jname '$jname'"; exit 2 ;;
	esac
}

# bh_root_only FILE: true when FILE is owned by root and not writable by group or others
bh_root_only() {
	[ -n "$(find "$1" -prune -user 0 ! -perm -020 ! -perm -002 2>/dev/null)" ]
}

bh_conf() { # NAME
	conf=${BERTH_HOOK_CONF:-$BH_DIR/$1}
	[ -r "$conf" ] || { bh_log "cannot read config $conf (copy $1 there, or set BERTH_HOOK_CONF)"; exit 1; }
	# The config is sourced by root: refuse it unless root owns it and nobody else can write it.
	bh_root_only "$conf" || { bh_log "refusing config $conf: it must be owned by root and not writable by group or others"; exit 1; }
	# shellcheck source=/dev/null
	. "$conf"
}

bh_need() { # VAR...
	for _bh_v; do
		eval "_bh_val=\${$_bh_v:-}"
		[ -n "$_bh_val" ] || { bh_log "$_bh_v is not set in $conf"; exit 1; }
	done
}

bh_seconds() { # VAR
	eval "_bh_val=\${$1:-}"
	case $_bh_val in '' | *[!0-9]*) bh_log "$1 must be a number of seconds, not '$_bh_val'"; exit 1 ;; esac
}

# bh_canon DIR: prints DIR with its parent resolved (never enters DIR itself); _bh_canon DIR sets
# BH_CANON instead (no fork: cd -P in this shell, which works from / anyway)
_bh_canon() {
	_bh_cd=$1
	while :; do case $_bh_cd in */) _bh_cd=${_bh_cd%/} ;; *) break ;; esac; done
	case $_bh_cd in */*) _bh_cp=${_bh_cd%/*} ;; *) _bh_cp=. ;; esac
	cd -P -- "${_bh_cp:-/}" 2>/dev/null || return 1
	BH_CANON="${PWD%/}/${_bh_cd##*/}"
	cd /
}
bh_canon() { _bh_canon "$1" && printf '%s\n' "$BH_CANON"; }

# bh_table: reads the mount table into BH_TABLE, one "<newline>DIR<tab>SRC" per mount, from
# `mount` ("SRC on DIR ..."), or with BH_MOUNTINFO=1 from /proc/self/mountinfo, where SRC is
# SRC[ROOT] when the mount shows a sub-directory ROOT of its file system (as findmnt(8) shows a
# bind mount); _bh_src DIR sets BH_SRCV to the source of the last mount on DIR in BH_TABLE (no
# fork); bh_mounted_source DIR reads the table and prints that source
bh_table() {
	if [ "$BH_MOUNTINFO" = 1 ] && [ -r /proc/self/mountinfo ]; then
		BH_TABLE=$(awk '{ for (i = 7; i < NF && $i != "-"; i++) ; s = $(i + 2); if ($4 != "/") s = s "[" $4 "]"; print $5 "\t" s }' /proc/self/mountinfo)
	else
		BH_TABLE=$(mount | awk '$2 == "on" { print $3 "\t" $1 }')
	fi
	BH_TABLE="$BH_NL$BH_TABLE$BH_NL"
}
_bh_src() {
	case $BH_TABLE in
	*"$BH_NL$1$BH_TAB"*)
		BH_SRCV=${BH_TABLE##*"$BH_NL$1$BH_TAB"}
		BH_SRCV=${BH_SRCV%%"$BH_NL"*}
		;;
	*) BH_SRCV='' ;;
	esac
}
bh_mounted_source() {
	bh_table
	_bh_src "$1"
	[ -z "$BH_SRCV" ] || printf '%s\n' "$BH_SRCV"
}

# bh_run CMD...: starts CMD (under timeout(1) when BH_TIMEOUT > 0) in the background and notes
# its pid with what it does ($BH_KIND: m for the mount of $BH_SRC on $BH_DST, u for an unmount,
# - for anything else). A signal to the hook (berth's timeout) then interrupts the wait at
# once, and the exit trap stops CMD: GNU timeout(1) moves itself into a process group of its
# own, so berth's SIGTERM to the hook's group does not reach it.
bh_run() {
	_bh_out=-
	if [ "$BH_TIMEOUT" -gt 0 ] && command -v timeout >/dev/null 2>&1; then set -- timeout "$BH_TIMEOUT" "$@"; fi
	if [ "$BH_CAPTURE" = 1 ] && [ "$BH_KIND" != u ]; then
		[ -n "$BH_OUTDIR" ] || BH_OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/berth-hook-out.XXXXXX") || bh_fail 1 "mktemp failed"
		BH_NJOB=$((BH_NJOB + 1))
		_bh_out=$BH_OUTDIR/$BH_NJOB
		"$@" 8>&- >"$_bh_out" 2>&1 &
	else
		"$@" 8>&- &
	fi
	BH_JOBS="$BH_JOBS$!$BH_TAB$BH_KIND$BH_TAB$BH_SRC$BH_TAB$BH_DST$BH_TAB$_bh_out
"
}

# bh_wait PID: waits for a command started by bh_run, forgets it, returns its exit code
bh_wait() {
	wait "$1"
	_bh_wrc=$?
	_bh_nj='' BH_LASTOUT=''
	while IFS= read -r _bh_l; do
		case $_bh_l in
		"$1$BH_TAB"*)
			BH_LASTOUT=${_bh_l##*"$BH_TAB"}
			if [ "$BH_LASTOUT" = - ]; then BH_LASTOUT=''; else cat "$BH_LASTOUT" >&2; fi
			;;
		'') ;;
		*) _bh_nj="$_bh_nj$_bh_l$BH_NL" ;;
		esac
	done <<EOF
$BH_JOBS
EOF
	BH_JOBS=$_bh_nj
	return "$_bh_wrc"
}

bh_timed() {
	BH_KIND=- BH_SRC=- BH_DST=-
	bh_run "$@"
	bh_wait "$!"
}

# bh_stop_jobs: stops the commands still running (the hook is exiting on a signal); an
# interrupted mount that got made after all is noted as this run's, to be undone
bh_stop_jobs() {
	[ -n "$BH_JOBS" ] || return 0
	_bh_left=$BH_JOBS
	BH_JOBS=''
	while IFS=$BH_TAB read -r _bh_p _bh_k _bh_s _bh_d _bh_o; do
		[ -n "$_bh_p" ] || continue
		kill -TERM "$_bh_p" 2>/dev/null
		wait "$_bh_p" 2>/dev/null
		if [ "$_bh_k" = m ] && [ "$(bh_mounted_source "$_bh_d")" = "$_bh_s" ]; then
			BH_MOUNTED="$_bh_d
$BH_MOUNTED"
		fi
	done <<EOF
$_bh_left
EOF
}

# --- mnt_start ---------------------------------------------------------------------------------

# shellcheck disable=SC2317  # called from the EXIT trap
bh_undo() {
	bh_stop_jobs
	[ -z "$BH_OUTDIR" ] || rm -rf "$BH_OUTDIR"
	if [ -n "$BH_TMPMNT" ]; then
		umount "$BH_TMPMNT" 2>/dev/null || umount -f "$BH_TMPMNT" 2>/dev/null
		rmdir "$BH_TMPMNT" 2>/dev/null
		BH_TMPMNT=''
	fi
	[ "$BH_RC" -eq 0 ] && return 0
	[ -n "$BH_MOUNTED" ] || return 0
	bh_log "undoing the mounts of this run"
	printf '%s\n' "$BH_MOUNTED" | while IFS= read -r _bh_m; do
		[ -n "$_bh_m" ] || continue
		bh_log "unmounting $_bh_m"
		umount "$_bh_m" || umount -f "$_bh_m" || bh_log "could not unmount $_bh_m"
	done
	BH_MOUNTED=''
}

bh_start() {
	BH_RC=0
	trap 'BH_RC=$?; bh_undo' EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

bh_mount() { # SRC DIR [ALT [ARG]]
	BH_QUEUE="${BH_QUEUE}m$BH_TAB$1$BH_TAB$2$BH_TAB${4:-$1}$BH_TAB${3:--}
"
}

bh_bind() { # KEY PATH DIR [ALT]
	BH_QUEUE="${BH_QUEUE}b$BH_TAB$1$BH_TAB$3$BH_TAB$2$BH_TAB${4:--}
"
}

# _bh_bind PATH DIR: starts the bind mount (Linux mount --bind, FreeBSD nullfs)
_bh_bind() {
	case $BH_OS in
	FreeBSD) bh_run mount -t nullfs "$1" "$2" ;;
	*) bh_run mount --bind "$1" "$2" ;;
	esac
}

# bh_mount_all: see the header. Every check comes before the first mount.
bh_mount_all() {
	_bh_todo=''
	bh_table
	_bh_q=$BH_QUEUE
	BH_QUEUE=''
	while IFS=$BH_TAB read -r _bh_k _bh_src _bh_dir _bh_arg _bh_alt; do
		[ -n "$_bh_k" ] || continue
		[ -d "$_bh_dir" ] || mkdir -p "$_bh_dir" || bh_fail 1 "cannot create mount point $_bh_dir"
		_bh_canon "$_bh_dir" || bh_fail 1 "cannot resolve $_bh_dir"
		_bh_dst=$BH_CANON
		_bh_src "$_bh_dst"
		_bh_cur=$BH_SRCV
		if [ -n "$_bh_cur" ] && { [ "$_bh_cur" = "$_bh_src" ] || [ "$_bh_cur" = "$_bh_alt" ]; }; then
			bh_log "$_bh_dst: already mounted from $_bh_cur, skipped"
			continue
		fi
		[ -z "$_bh_cur" ] || bh_fail 1 "$_bh_dst is already mounted from $_bh_cur, not $_bh_src; refusing to mount over it"
		_bh_todo="$_bh_todo$_bh_k$BH_TAB$_bh_src$BH_TAB$_bh_dst$BH_TAB$_bh_arg
"
	done <<EOF
$_bh_q
EOF
	while IFS=$BH_TAB read -r _bh_k _bh_src _bh_dst _bh_arg; do
		[ -n "$_bh_k" ] || continue
		BH_KIND=m BH_SRC=$_bh_src BH_DST=$_bh_dst
		if [ "$_bh_k" = b ]; then
			bh_log "binding $_bh_arg on $_bh_dst"
			_bh_bind "$_bh_arg" "$_bh_dst"
		else
			bh_log "mounting $_bh_src on $_bh_dst"
			do_mount "$_bh_arg" "$_bh_dst"
		fi
		[ "$BH_PARALLEL" = 1 ] || _bh_wait_mounts
	done <<EOF
$_bh_todo
EOF
	_bh_wait_mounts
}

# _bh_wait_mounts: waits for the mounts started, then checks them all in one read of the mount
# table; the first failure (in the order they were started) ends the hook
_bh_wait_mounts() {
	[ -n "$BH_JOBS" ] || return 0
	_bh_jobs=$BH_JOBS
	_bh_res=''
	while IFS=$BH_TAB read -r _bh_p _bh_k _bh_s _bh_d _bh_o; do
		[ -n "$_bh_p" ] || continue
		bh_wait "$_bh_p"
		_bh_res="$_bh_res$?$BH_TAB$_bh_s$BH_TAB$_bh_d$BH_TAB${BH_LASTOUT:--}
"
	done <<EOF
$_bh_jobs
EOF
	bh_table
	_bh_frc=0 _bh_fmsg=''
	while IFS=$BH_TAB read -r _bh_r _bh_s _bh_d _bh_o; do
		[ -n "$_bh_r" ] || continue
		_bh_src "$_bh_d"
		_bh_cur=$BH_SRCV
		if [ "$_bh_cur" = "$_bh_s" ]; then
			BH_MOUNTED="$_bh_d
$BH_MOUNTED"
			[ "$_bh_r" -eq 0 ] && continue
		fi
		[ "$_bh_frc" -eq 0 ] || continue
		if [ "$_bh_r" -ne 0 ]; then
			_bh_frc=$_bh_r _bh_fmsg="mount of $_bh_s on $_bh_d failed (exit $_bh_r)"
			if command -v bh_explain >/dev/null 2>&1; then _bh_fmsg="$_bh_fmsg$(bh_explain "$_bh_r" "$_bh_o")"; fi
		else
			_bh_frc=1 _bh_fmsg="mount of $_bh_s on $_bh_d returned 0 but $_bh_d is ${_bh_cur:+mounted from $_bh_cur}${_bh_cur:-not mounted}${BH_NOT_MOUNTED_HINT:+ ($BH_NOT_MOUNTED_HINT)}"
		fi
	done <<EOF
$_bh_res
EOF
	[ "$_bh_frc" -eq 0 ] || bh_fail "$_bh_frc" "$_bh_fmsg"
}

bh_tmp_mount() { # SRC PREFIX [ARG]
	BH_TMPMNT=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX") || bh_fail 1 "mktemp failed"
	_bh_canon "$BH_TMPMNT"
	_bh_t=$BH_CANON
	BH_KIND=- BH_SRC=- BH_DST=-
	do_mount "${3:-$1}" "$BH_TMPMNT"
	bh_wait "$!"
	_bh_rc=$?
	if [ "$_bh_rc" -ne 0 ]; then
		_bh_fmsg="temporary mount of $1 failed (exit $_bh_rc)"
		if command -v bh_explain >/dev/null 2>&1; then _bh_fmsg="$_bh_fmsg$(bh_explain "$_bh_rc" "$BH_LASTOUT")"; fi
		bh_fail "$_bh_rc" "$_bh_fmsg"
	fi
	[ "$(bh_mounted_source "$_bh_t")" = "$1" ] || bh_fail 1 "temporary mount of $1 on $BH_TMPMNT did not happen"
}

bh_renaming() {
	[ "${BERTH_ACTION:-}" = rename ] || return 1
	old_jname=${BERTH_OLD_JNAME:-}
	case $old_jname in
	*/* | .* | '') bh_log "bad or missing BERTH_OLD_JNAME '$old_jname' for BERTH_ACTION=rename"; exit 2 ;;
	esac
	return 0
}

bh_rename_dirs() { # DIR KIND...
	_bh_rd=$1
	shift
	for _bh_k; do
		_bh_o=$_bh_rd/$_bh_k/$old_jname _bh_n=$_bh_rd/$_bh_k/$jname
		if [ -e "$_bh_o" ]; then
			[ ! -e "$_bh_n" ] || bh_fail 1 "cannot rename $_bh_k/$old_jname to $_bh_k/$jname: both exist"
			bh_log "renaming $_bh_k/$old_jname to $_bh_k/$jname"
			mv -- "$_bh_o" "$_bh_n" || bh_fail 1 "cannot rename $_bh_k/$old_jname to $_bh_k/$jname"
		elif [ -d "$_bh_n" ]; then
			bh_log "$_bh_k/$jname: already renamed"
		else
			bh_fail 1 "neither $_bh_k/$old_jname nor $_bh_k/$jname exists"
		fi
	done
}

bh_tmp_umount() {
	bh_timed umount "$BH_TMPMNT" || bh_fail 1 "cannot unmount the temporary mount $BH_TMPMNT"
	rmdir "$BH_TMPMNT"
	BH_TMPMNT=''
}

bh_base_mount() { # SRC DIR [ARG]
	# its parent only root may enter: every env of the node is visible through it
	_bh_bp=$(dirname -- "$2")
	[ -d "$_bh_bp" ] || { mkdir -p "$_bh_bp" && chmod 0700 "$_bh_bp"; } || bh_fail 1 "cannot create $_bh_bp"
	[ -d "$2" ] || mkdir -p "$2" || bh_fail 1 "cannot create $2"
	_bh_canon "$2" || bh_fail 1 "cannot resolve $2"
	_bh_b=$BH_CANON
	if command -v flock >/dev/null 2>&1; then
		exec 8>>"$_bh_b.lock" || bh_fail 1 "cannot open $_bh_b.lock"
		if [ "$BH_TIMEOUT" -gt 0 ]; then flock -w "$BH_TIMEOUT" 8; else flock 8; fi || bh_fail 1 "another hook held $_bh_b.lock (flock) for ${BH_TIMEOUT}s"
	fi
	_bh_cur=$(bh_mounted_source "$_bh_b")
	if [ -n "$_bh_cur" ] && [ "$_bh_cur" != "$1" ]; then
		bh_fail 1 "$_bh_b is mounted from $_bh_cur, not $1; refusing to use it"
	fi
	if [ -n "$_bh_cur" ]; then
		# alive? a client that died answers at once (ENOTCONN); a server that hangs is cut by BH_TIMEOUT
		bh_timed df -P "$_bh_b" >/dev/null 2>&1
		_bh_rc=$?
		[ "$_bh_rc" -ne 124 ] || bh_fail 124 "this node's mount of $1 on $_bh_b does not answer within ${BH_TIMEOUT}s"
		if [ "$_bh_rc" -ne 0 ]; then
			bh_log "warning: this node's mount of $1 on $_bh_b is dead (its client is gone): detaching it (umount -l) and mounting it again; envs still bound to it must be restarted"
			umount -l "$_bh_b" || bh_fail 1 "cannot detach the dead mount $_bh_b"
			_bh_cur=''
		fi
	fi
	if [ -z "$_bh_cur" ]; then
		bh_log "mounting $1 on $_bh_b (this node's mount for all its envs; it stays mounted)"
		BH_KIND=- BH_SRC=- BH_DST=-
		do_mount "${3:-$1}" "$_bh_b"
		bh_wait "$!"
		_bh_rc=$?
		if [ "$_bh_rc" -ne 0 ]; then
			_bh_fmsg="mount of $1 on $_bh_b failed (exit $_bh_rc)"
			if command -v bh_explain >/dev/null 2>&1; then _bh_fmsg="$_bh_fmsg$(bh_explain "$_bh_rc" "$BH_LASTOUT")"; fi
			bh_fail "$_bh_rc" "$_bh_fmsg"
		fi
		_bh_cur=$(bh_mounted_source "$_bh_b")
		[ "$_bh_cur" = "$1" ] || bh_fail 1 "mount of $1 on $_bh_b returned 0 but $_bh_b is ${_bh_cur:+mounted from $_bh_cur}${_bh_cur:-not mounted}"
	fi
	exec 8>&-
}

# --- mnt_stop ----------------------------------------------------------------------------------

bh_stop() {
	BH_FAILED=0
	trap 'bh_stop_jobs' EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

bh_umount() { # SRC DIR [ALT]
	BH_QUEUE="$BH_QUEUE$1$BH_TAB$2$BH_TAB${3:--}
"
}

# _bh_umount_retry SRC DIR: after a failed unmount: again in 1 s, then forced
_bh_umount_retry() {
	sleep 1
	[ "$(bh_mounted_source "$2")" = "$1" ] || return 0
	bh_timed umount "$2" && return 0
	bh_log "unmount of $2 failed; forcing it"
	bh_timed umount -f "$2"
	if [ "$(bh_mounted_source "$2")" = "$1" ]; then
		bh_log "error: $2 is still mounted from $1"
		BH_FAILED=1
	fi
}

bh_umount_all() {
	_bh_todo=''
	bh_table
	_bh_q=$BH_QUEUE
	BH_QUEUE=''
	while IFS=$BH_TAB read -r _bh_src _bh_dir _bh_alt; do
		[ -n "$_bh_src" ] || continue
		_bh_canon "$_bh_dir" || { bh_log "$_bh_dir: parent directory missing, nothing mounted there"; continue; }
		_bh_dst=$BH_CANON
		_bh_src "$_bh_dst"
		_bh_cur=$BH_SRCV
		if [ -z "$_bh_cur" ]; then
			bh_log "$_bh_dst: not mounted, skipped"
			continue
		fi
		if [ "$_bh_cur" != "$_bh_src" ] && [ "$_bh_cur" != "$_bh_alt" ]; then
			bh_log "warning: $_bh_dst is mounted from $_bh_cur, not $_bh_src: left alone"
			continue
		fi
		_bh_todo="$_bh_todo$_bh_cur$BH_TAB$_bh_dst
"
	done <<EOF
$_bh_q
EOF
	while IFS=$BH_TAB read -r _bh_src _bh_dst; do
		[ -n "$_bh_src" ] || continue
		bh_log "unmounting $_bh_dst ($_bh_src)"
		BH_KIND=u BH_SRC=$_bh_src BH_DST=$_bh_dst
		bh_run umount "$_bh_dst"
		[ "$BH_PARALLEL" = 1 ] || _bh_wait_umounts
	done <<EOF
$_bh_todo
EOF
	_bh_wait_umounts
	[ "$BH_FAILED" -eq 0 ] || exit 1
}

# _bh_wait_umounts: waits for the unmounts started; retries those that failed
_bh_wait_umounts() {
	[ -n "$BH_JOBS" ] || return 0
	_bh_jobs=$BH_JOBS
	_bh_res=''
	while IFS=$BH_TAB read -r _bh_p _bh_k _bh_s _bh_d _bh_o; do
		[ -n "$_bh_p" ] || continue
		bh_wait "$_bh_p" || _bh_res="$_bh_res$_bh_s$BH_TAB$_bh_d
"
	done <<EOF
$_bh_jobs
EOF
	while IFS=$BH_TAB read -r _bh_s _bh_d; do
		[ -n "$_bh_s" ] || continue
		_bh_umount_retry "$_bh_s" "$_bh_d"
	done <<EOF
$_bh_res
EOF
}

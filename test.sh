#!/usr/bin/env bash
# test.sh - drives the real programs over real sockets on loopback and
# checks what they answer and store, byte for byte.
#
#   ./test.sh            all tests
#   ./test.sh PATTERN    only the groups whose name contains PATTERN
#   ./test.sh =NAME      only the group NAME
#   TEST_FAIL_FAST=1     stop at the first failed check (tests/mutants.sh)
#
# This file is the runner and the shared helpers; the tests themselves
# are in tests/groups/*.sh, one file per area, each adding its group
# names to TEST_GROUPS (a group NAME is the function t_NAME).  Servers get
# free ports (smtpd -p 0 logs the port it got), are waited for by
# polling, and are stopped by pid, also when a test fails.  Each group
# runs in a subshell: a server that does not start is a failure that
# ends its group, and the next group runs.  A group whose peer program
# is missing says why and counts as skipped.  The last line is
# "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")" || exit 1
TOP=$PWD
CHAT=$TOP/tests/chat
ONLY=${1:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/smtpd-test.XXXXXX") || exit 1
PIDS=()
TEST_GROUPS=()
pass=0
fail=0
skipped=0

# ---- bookkeeping ------------------------------------------------------------

ok() { pass=$((pass + 1)); echo "ok   - $1"; }
skip() { skipped=$((skipped + 1)); echo "skip - $1"; }
not_ok() {
	fail=$((fail + 1))
	echo "FAIL - $1"
	if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 40 | sed 's/^/       /'; fi
	[ -z "${TEST_FAIL_FAST:-}" ] || exit 1     # ends the group; run_group stops the run
}
# check NAME EXPECTED ACTUAL: equal strings, or a diff.
check() {
	if [ "$2" == "$3" ]; then ok "$1"
	else not_ok "$1" "$(diff <(printf '%s\n' "$2") <(printf '%s\n' "$3"))"; fi
}
# check_true NAME COMMAND...: the command succeeds.
check_true() {
	local name=$1; shift
	if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}

# Wait until COMMAND succeeds: at most N tries, 0.05 s apart.
poll() {
	local tries=$1 i; shift
	for ((i = 0; i < tries; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# A zombie (exited, not yet waited for) answers kill -0: it counts as dead.
dead() {
	local stat=""
	kill -0 "$1" 2>/dev/null || return 0
	read -r stat 2>/dev/null <"/proc/$1/stat"     # builtins only: kill loops call this often
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}
alive() { ! dead "$1"; }

stop_pid() {        # TERM, wait up to 10 s, then KILL
	local pid=$1
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	poll 200 dead "$pid" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

cleanup() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- servers -------------------------------------------------------------------

# start_server LOG COMMAND...: run a server that logs "listening ...
# port=N" to LOG; wait for that line (or its death).  Sets SPID and PORT.
# A server that does not start is a failure that ends its group (the
# group's subshell, see run_group), so no test goes on with an empty
# port; with SERVER_MAY_FAIL set it only returns 1.
start_server() {
	local log=$1; shift
	"$@" 2>"$log" &
	SPID=$!
	PIDS+=("$SPID")
	PORT=
	listening_or_dead() { grep -qs 'listening' "$log" || dead "$SPID"; }
	poll 200 listening_or_dead
	PORT=$(sed -n 's/.*listening.* port=\([0-9]*\).*/\1/p' "$log" | head -n 1)
	if [ -z "$PORT" ]; then
		[ -n "${SERVER_MAY_FAIL:-}" ] && return 1
		not_ok "server did not start: $*" "$(cat "$log")"
		exit 1
	fi
}

# start_smtpd DIR [options]: run smtpd inside $T/DIR on a free port of
# 127.0.0.1 (options may name another -a and -p).  Sets SPID and PORT.
# ULIMIT_F=KiB in the environment limits the size of the files it writes.
start_smtpd() {
	local dir=$T/$1; shift
	mkdir -p "$dir"
	start_server "$dir/log" sh -c 'cd "$1" && shift && { [ -z "${ULIMIT_F:-}" ] || ulimit -f "$ULIMIT_F"; } && exec "$@"' \
		sh "$dir" "$TOP/smtpd" -p 0 -n mx.test -t 20 "$@"
}

# start_dnsd NAME < zone: the project's DNS responder on 127.0.0.1.
# Sets DNS (for -R) and DPID.
start_dnsd() {
	mkdir -p "$T/$1"
	cat >"$T/$1/zone"
	start_server "$T/$1/dns.log" "$TOP/tests/dnsd" -a 127.0.0.1 -p 0 "$T/$1/zone"
	DNS=127.0.0.1:$PORT
	DPID=$SPID
}

# smtp PORT [chat options] < script with LF line ends: sent with CRLF
# to 127.0.0.1, or to $SMTP_HOST.
smtp() {
	local port=$1; shift
	sed 's/$/\r/' | "$CHAT" "$@" "${SMTP_HOST:-127.0.0.1}" "$port"
}

# Replies with the variable parts (message ids) replaced, CR removed.
norm() { sed -E -e 's/(stored and queued|stored|queued) as [0-9A-Za-z.]+/\1 as ID/' -e 's/\r$//'; }

# Only the reply codes, one per line ("250", "250-", ...).
codes() { tr -d '\r' | cut -c1-4 | sed 's/ $//'; }

# A message file without our Received: block (date and id vary).
strip_received() {
	awk 'hdr == 0 && /^Received:/ { skip = 1; next }
	     hdr == 0 && skip && /^[ \t]/ { next }
	     { skip = 0 } /^$/ { hdr = 1 } { print }' "$@"
}

count_files() { find "$1" -type f 2>/dev/null | wc -l | tr -d ' '; }
only_file() { find "$1" -type f | head -n 1; }

group() {   # group NAME: run the following tests only if NAME matches
	case $ONLY in
	"") return 0 ;;
	=*) [ "$1" = "${ONLY#=}" ] ;;
	*) [[ $1 == *$ONLY* ]] ;;
	esac
}

# run_group NAME: t_NAME in a subshell, so that a failure which must end
# the group (start_server) ends only it.  On the way out, however it
# ends, the subshell stops the processes the group started and hands its
# counts back.
# shellcheck disable=SC2030,SC2031  # the subshell's counts come back through a file
run_group() {
	rm -f "$T/counts"
	(
		trap 'for p in "${PIDS[@]}"; do stop_pid "$p"; done; echo "$pass $fail $skipped" >"$T/counts"' EXIT
		trap 'exit 1' INT TERM
		PIDS=() pass=0 fail=0 skipped=0
		"t_$1"
	)
	local p f s
	read -r p f s <"$T/counts" || { p=0 f=1 s=0; echo "FAIL - group $1 did not report"; }
	pass=$((pass + p)) fail=$((fail + f)) skipped=$((skipped + s))
	if [ -n "${TEST_FAIL_FAST:-}" ] && [ "$fail" -gt 0 ]; then
		echo "$pass passed, $fail failed, $skipped skipped (stopped at the first failure)"
		exit 1
	fi
}

# ---- processes, from /proc (the tests may use it; the programs do not) ----------

# Children of PID that are zombies (state Z), from /proc.
zombies_of() {
	local n=0 f
	for f in /proc/[0-9]*/stat; do
		read -r _ _ state ppid _ 2>/dev/null <"$f" || continue
		[ "$ppid" = "$1" ] && [ "$state" = Z ] && n=$((n + 1))
	done
	echo $n
}
# Zombies of PID once the parent had a moment to reap: a child that
# exited just now is a zombie until the next SIGCHLD is handled, so poll
# (at most 2 s) before counting.
settled_zombies_of() {
	no_zombies() { [ "$(zombies_of "$1")" = 0 ]; }
	poll 40 no_zombies "$1"
	zombies_of "$1"
}
fd_list() {     # "fd target" lines of a process, from /proc
	local f
	for f in /proc/"$1"/fd/*; do echo "${f##*/} $(readlink "$f")"; done | sort
}
children_of() {
	local f pid ppid
	for f in /proc/[0-9]*/stat; do
		read -r pid _ _ ppid _ 2>/dev/null <"$f" || continue
		[ "$ppid" = "$1" ] && echo "$pid"
	done
}

# ---- run -------------------------------------------------------------------------

for f in session addresses limits send resilience teaching exercises graders catch citations peers clients interop intl; do
	# shellcheck source=/dev/null
	. "$TOP/tests/groups/$f.sh"
done
if ! make -s all >"$T/make.log" 2>&1; then
	cat "$T/make.log"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
for t in "${TEST_GROUPS[@]}"; do
	if group "$t"; then run_group "$t"; fi
done
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]

# shellcheck shell=bash
# tests/groups/teaching.sh, sourced by test.sh
# the teaching layer: make demo, the lab, NOTES.md's transcript
# Groups: demo lab notes
TEST_GROUPS+=(demo lab notes)

# ---- tests: the teaching layer ------------------------------------------------------

# Processes whose working directory is under DIR (the lab's servers run
# in their host directories).
procs_in() {
	local f n=0
	for f in /proc/[0-9]*/cwd; do
		case $(readlink "$f" 2>/dev/null) in "$1"/*) n=$((n + 1)) ;; esac
	done
	echo $n
}

t_demo() {
	local out rc
	out=$(LAB_DIR=$T/demo LAB_PORT=0 LAB_DNS_PORT=0 ./lab/lab.sh demo 2>&1); rc=$?
	check "make demo: the mail arrives, exit 0" "0|Result: the mail arrived (1 message in bob's Maildir)." \
		"$rc|$(echo "$out" | tail -n 1)"
	check "demo: seven numbered steps" "1 2 3 4 5 6 7" \
		"$(echo "$out" | sed -n 's/^Step \([0-9]\)\..*/\1/p' | tr '\n' ' ' | sed 's/ $//')"
	check "demo: the route shows the CNAME and both MX by preference" "    |   cs.example.net is an alias (CNAME) for example.net
    |     10 mx1.example.net: 127.0.0.3
    |     20 mx2.example.net: 127.0.0.4" "$(echo "$out" | grep -E 'alias \(CNAME\)|^    \|     [0-9]+ mx' | head -n 3)"
	check "demo: the best MX is down, the fallback shows" "    | trying mx1.example.net (preference 10)
    | trying mx2.example.net (preference 20)" "$(echo "$out" | grep 'trying mx')"
	check "demo: two Received: lines in bob's copy, newest first" \
		"    | Received: from mail.example.org ([127.0.0.1])
    | Received: from alice-laptop.example.org ([127.0.0.1])" "$(echo "$out" | sed -n '/^Step 6/,$p' | grep '| Received:')"
	check "demo: every process it started is stopped" "0" "$(procs_in "$T/demo")"
}

t_lab() {
	local out
	out=$(LAB_DIR=$T/lab LAB_PORT=0 LAB_DNS_PORT=0 ./lab/lab.sh up 2>&1)
	check "lab up: DNS and three mail hosts up" "4" "$(echo "$out" | grep -c ' up$')"
	local port
	port=$(cat "$T/lab/port")
	out=$(printf 'HELO c\nMAIL FROM:<x@example.net>\nRCPT TO:<alice@example.org>\nDATA\nhi\n.\nQUIT\n' |
		SMTP_HOST=127.0.0.2 smtp "$port" | codes | tr '\n' ' ')
	check "lab: mail.example.org takes mail for alice" "220 250 250 250 354 250 221 |1" \
		"$out|$(count_files "$T/lab/mail/mail/alice/new")"
	LAB_DIR=$T/lab ./lab/lab.sh stop mx1 >/dev/null
	check "lab stop mx1: only that host stops" "3" \
		"$(LAB_DIR=$T/lab ./lab/lab.sh status | grep -c ' up$')"
	LAB_DIR=$T/lab ./lab/lab.sh down
	check "lab down: nothing left running" "0" "$(procs_in "$T/lab")"
}

t_notes() {
	local want have
	want=$(./lab/transcript.sh)
	have=$(sed -n '/<!-- transcript:begin -->/,/<!-- transcript:end -->/p' NOTES.md | sed -e '1,2d' -e '$d' | sed '$d')
	check "NOTES.md holds the transcript the programs print today (lab/transcript.sh)" "$want" "$have"
}


# shellcheck shell=bash
# tests/groups/resilience.sh, sourced by test.sh
# hostile clients, scarce resources, crash safety, valgrind
# Groups: flood resources crash valgrind
TEST_GROUPS+=(flood resources crash valgrind)

# ---- tests: hostile clients and scarce resources ----------------------------------

t_flood() {
	# 200 clients trickling a byte a second against -c 20 -t 4, while a
	# well-behaved client holds one slot and finishes its transaction
	start_smtpd flood -m mail -c 20 -t 4
	local d=$T/flood good out
	mkdir -p "$d/mail/alice"
	printf 'HELO good\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nduring the flood\r\n.\r\nQUIT\r\n' |
		"$CHAT" -H 3 -T 30 127.0.0.1 "$PORT" >"$d/good" & good=$!
	PIDS+=("$good")
	poll 200 grep -q 220 "$d/good"
	"$TOP/tests/trickle" -n 200 -i 1 -d 9 -l 3 127.0.0.1 "$PORT" >"$d/trickle"
	wait "$good"
	# "at once": before any slot could be freed by the 4 s timeout
	check "flood: the extra 181 get 421 4.3.2 at once; the 19 tricklers time out (421 4.4.2)" \
		"greeted=19 refused=181 refused_late=0 timed_out=19" "$(cat "$d/trickle")"
	check "flood: the well-behaved client is served meanwhile" "220 250 250 250 354 250 221 " \
		"$(codes <"$d/good" | tr '\n' ' ')"
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@localhost>\nDATA\nafter\n.\nQUIT\n' | smtp "$PORT" | codes | tr '\n' ' ')
	check "flood: timeouts freed the slots, the next client is served" "220 250 250 250 354 250 221 |2" \
		"$out|$(count_files "$d/mail/alice/new")"
	check "flood: no zombies" "0" "$(settled_zombies_of "$SPID")"
	stop_pid "$SPID"
}

t_resources() {
	# Out of descriptors: with 7 the parent can hold its own (0-2, pipe,
	# spare, listening socket) but not one more: accept() fails EMFILE.
	local d=$T/emfile out
	mkdir -p "$d"
	start_server "$d/log" sh -c 'cd "$1" && ulimit -n 7 && exec "$2" -p 0 -n mx.test -m mail' sh "$d" "$TOP/smtpd"
	out=$(printf 'QUIT\r\n' | "$CHAT" -w -T 5 127.0.0.1 "$PORT" | norm; printf 'QUIT\r\n' | "$CHAT" -w -T 5 127.0.0.1 "$PORT" | norm)
	check "out of file descriptors: 421, and the server lives on" "421 4.3.2 Out of file descriptors, try again later
421 4.3.2 Out of file descriptors, try again later|alive|2" \
		"$out|$(alive "$SPID" && echo alive)|$(grep -c 'accept error="Too many open files" action=421' "$d/log")"
	stop_pid "$SPID"

	# fork() failing: only an unprivileged user is bound by ulimit -u
	if ! command -v setpriv >/dev/null; then
		skip "fork failure: setpriv(1) is not installed"
		return
	fi
	local nobody
	nobody=$(grep -l '^Uid:[[:space:]]*65534[[:space:]]' /proc/[0-9]*/status 2>/dev/null | wc -l)
	d=$T/nofork
	mkdir -p "$d/mail" "$d/queue"
	# the checkout may sit where that user cannot go (mkdir -m 700): the
	# user runs a copy of smtpd in the test's own directory
	cp "$TOP/smtpd" "$d/smtpd"
	chmod 755 "$T" "$d/smtpd"
	chown -R 65534:65534 "$d"
	start_server "$d/log" setpriv --reuid=65534 --regid=65534 --clear-groups \
		bash -c 'cd "$1" && ulimit -u "$2" && exec "$3" -p 0 -n mx.test -m mail' bash "$d" $((nobody + 1)) "$d/smtpd"
	out=$(printf 'QUIT\r\n' | "$CHAT" -w -T 5 127.0.0.1 "$PORT" | norm)
	check "fork() fails: 421 4.3.0, and the server lives on" "421 4.3.0 mx.test Cannot start a session, try again later|alive|1" \
		"$out|$(alive "$SPID" && echo alive)|$(grep -c 'fork error="Resource temporarily unavailable" action=421' "$d/log")"
	stop_pid "$SPID"
}

# ---- crash safety ---------------------------------------------------------------------

# One child of a process, at random (Linux's /proc/PID/task/PID/children,
# fast enough for a kill loop; the full /proc scan otherwise).
random_child() {
	local kids f=/proc/$1/task/$1/children
	if [ -r "$f" ]; then kids=($(cat "$f" 2>/dev/null)); else kids=($(children_of "$1")); fi
	[ ${#kids[@]} -gt 0 ] && echo "${kids[RANDOM % ${#kids[@]}]}"
}

t_crash() {
	# 500 messages over as many connections while sessions and the server
	# itself are killed with SIGKILL; the server is restarted each time.
	# Under sanitizers, a SIGKILL during LeakSanitizer's exit-time scan
	# breaks the scan itself, so here (only) leak detection is off; ASan
	# and UBSan stay on, and every other group checks for leaks.
	local ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:detect_leaks=0}
	export ASAN_OPTIONS
	start_smtpd crash -m mail
	local d=$T/crash P=$PORT sender i child kills=0 restarts=0 out try
	mkdir -p "$d/mail/alice"
	# -w 30: every client pauses 30 ms after each message, so the sending
	# lasts at least 1.5 s and the kills below happen during it, however
	# fast or loaded the machine is (with -w 10, a loaded machine once let
	# the sending end after 2 kills)
	"$TOP/tests/stress" send -c 10 -n 50 -w 30 127.0.0.1 "$P" alice@localhost "$d/acks" & sender=$!
	PIDS+=("$sender")
	for ((i = 0; i < 3000; i++)); do
		alive "$sender" || break
		sleep "0.00$((RANDOM % 5 + 1))"
		if ((i % 6 == 5)); then
			kill -KILL "$SPID"; wait "$SPID" 2>/dev/null
			# a session forked just before the kill may hold the
			# listening socket for a moment: try the port again
			for try in 1 2 3 4 5; do
				SERVER_MAY_FAIL=1 start_smtpd crash -m mail -p "$P" && break
				sleep 0.1
			done
			restarts=$((restarts + 1))
		elif child=$(random_child "$SPID"); then
			kill -KILL "$child" 2>/dev/null && kills=$((kills + 1))
		fi
	done
	wait "$sender"
	stop_pid "$SPID"
	out=$("$TOP/tests/stress" verify "$d/mail/alice" "$d/acks")
	echo "       ($kills sessions and $restarts servers killed: $out)"
	check "crash safety: every acknowledged message in new/ exactly once, whole; tmp/ only unacknowledged" \
		"acked=500 missing=0 partial=0 duplicates=0 tmp_of_acked=0" \
		"$(echo "$out" | grep -o 'acked=[0-9]* ' | head -n 1)$(echo "$out" | grep -o 'missing=[0-9]* partial=[0-9]* duplicates=[0-9]*') $(echo "$out" | grep -o 'tmp_of_acked=[0-9]*')"
	check_true "crash safety: the test really killed sessions and servers" [ "$kills" -ge 3 -a "$restarts" -ge 1 ]

	# The queue runner, killed mid-delivery again and again: no queued
	# message is lost (a duplicate after a crash is allowed, and counted).
	start_dnsd crashq <<<"$ZONE"
	start_smtpd crashmx -a 127.0.0.2 -m mail -d example.org
	local mx=$SPID runner entries
	P=$PORT
	mkdir -p "$T/crashmx/mail/alice"
	start_smtpd crashsub -a 127.0.0.8 -p "$P" -m mail -q queue -d example.com
	local sub=$SPID
	"$TOP/tests/stress" send -c 4 -n 15 127.0.0.8 "$P" alice@example.org "$d/qacks"
	entries=$(count_files "$T/crashsub/queue/entries")
	kills=0
	# the runner and its delivery processes (-j 2) die together, as in a
	# power cut: a delivery process left alive would finish its entry
	for ((i = 0; i < 12; i++)); do
		"$SEND" -q "$T/crashsub/queue" -F -j 2 -R "$DNS" -P "$P" -T 5 2>/dev/null & runner=$!
		sleep "0.00$((RANDOM % 9 + 1))"
		# shellcheck disable=SC2046
		kill -KILL "$runner" $(cat "/proc/$runner/task/$runner/children" 2>/dev/null) 2>/dev/null &&
			kills=$((kills + 1))
		wait "$runner" 2>/dev/null
	done
	for ((i = 0; i < 5 && $(count_files "$T/crashsub/queue/entries") > 0; i++)); do
		"$SEND" -q "$T/crashsub/queue" -F -R "$DNS" -P "$P" -T 5 2>/dev/null
	done
	out=$("$TOP/tests/stress" verify -d "$T/crashmx/mail/alice" "$d/qacks")
	echo "       ($entries entries, runner killed $kills times: $out)"
	check "queue runner killed mid-delivery: nothing lost, the queue drains" "60|missing=0 partial=0|0" \
		"$entries|$(echo "$out" | grep -o 'missing=[0-9]* partial=[0-9]*')|$(count_files "$T/crashsub/queue/entries")"
	stop_pid "$sub"
	stop_pid "$mx"
	stop_pid "$DPID"
}

# ---- valgrind on a representative subset ---------------------------------------------

t_valgrind() {
	if ! command -v valgrind >/dev/null; then
		skip "valgrind: not installed"
		return
	fi
	if [ -n "${SANITIZED:-}" ]; then
		skip "valgrind: the programs are built with sanitizers (tests/sanitize.sh)"
		return
	fi
	local d=$T/vg out rc mx sub
	mkdir -p "$d/logs"
	# -q: a log stays empty unless there is an error or a definite leak;
	# %p gives every process, forked sessions too, its own log
	local vg=(valgrind -q --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
		--error-exitcode=99 --log-file="$d/logs/%p.log")
	start_dnsd vg <<<"$ZONE"
	mkdir -p "$d/mx/mail/alice" "$d/sub/mail/sender"
	start_server "$d/mx.log" sh -c 'cd "$1" && shift && exec "$@"' sh "$d/mx" "${vg[@]}" "$TOP/smtpd" \
		-a 127.0.0.2 -p 0 -n mx1.example.org -d example.org -m mail -t 30
	mx=$SPID
	local P=$PORT
	start_server "$d/sub.log" sh -c 'cd "$1" && shift && exec "$@"' sh "$d/sub" "${vg[@]}" "$TOP/smtpd" \
		-a 127.0.0.8 -p "$P" -n mail.example.com -d example.com -m mail -q queue -t 30
	sub=$SPID
	# a whole session with pipelining, queued for relay
	out=$(printf 'EHLO c\r\nMAIL FROM:<sender@example.com>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\nSubject: vg\r\n\r\n..dot\r\n.\r\nQUIT\r\n' |
		"$CHAT" -T 30 127.0.0.8 "$P" | codes | tr '\n' ' ')
	check "valgrind: a session on smtpd" "220 250- 250- 250- 250- 250- 250- 250 250 250 250 354 250 221 " "$out"
	# a relay and a bounce: the queue runner, under valgrind too
	"${vg[@]}" "$TOP/smtp_send" -q "$d/sub/queue" -R "$DNS" -P "$P" -T 20 2>"$d/run"; rc=$?
	check "valgrind: queue run (relay, refused recipient, bounce delivered)" "0|1|1" \
		"$rc|$(count_files "$d/mx/mail/alice/new")|$(count_files "$d/sub/mail/sender/new")"
	# the resolver and the client on the stdin path, -t included
	printf 'To: alice@example.org\nBcc: alice@example.org\nSubject: t\n\nx\n' |
		"${vg[@]}" "$TOP/smtp_send" -t -R "$DNS" -P "$P" -T 20 -f s@example.com 2>/dev/null; rc=$?
	check "valgrind: smtp_send -t via DNS" "0|2" "$rc|$(count_files "$d/mx/mail/alice/new")"
	stop_pid "$sub"
	stop_pid "$mx"
	stop_pid "$DPID"
	check "valgrind: no invalid access and no leak in any process (logs empty)" "|yes" \
		"$(cat "$d"/logs/*.log 2>/dev/null | head -n 30)|$([ "$(ls "$d/logs" | wc -l)" -ge 6 ] && echo yes)"
}


# shellcheck shell=bash
# tests/groups/limits.sh, sourced by test.sh
# smtpd: smuggling, limits, timeouts, sessions, storage, disconnects, shutdown, logs
# Groups: smuggling limits timeouts sessions storage disconnect shutdown logs
TEST_GROUPS+=(smuggling limits timeouts sessions storage disconnect shutdown logs)

t_smuggling() {
	start_smtpd smug -m mail
	local d=$T/smug out
	mkdir -p "$d/mail/alice"
	# The smuggling attack: "<LF>.<LF>" (or "<LF>.<CRLF>") followed by a
	# second transaction hidden in the first message.
	out=$(printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nsmuggled\n.\r\nstill the first\r\n.\r\nNOOP\r\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" | norm)
	check "bare LF: <LF>.<LF> does not end the data; message refused at its end" "220 mx.test ESMTP
250 mx.test Hello c [127.0.0.1]
250 2.1.0 Sender <a@b.test> OK
250 2.1.5 Recipient <alice@localhost> OK
354 End data with <CR><LF>.<CR><LF>
550 5.6.0 Message has a bare CR or LF; lines must end in CRLF (RFC 5321 2.3.8)
250 2.0.0 Ok
221 2.0.0 mx.test closing connection" "$out"
	out=$(printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nbare\rcr\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nend with\r\n.\nmore\r\n.\r\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" | codes | tr '\n' ' ')
	check "bare CR refused; <CRLF>.<LF> does not end the data either" "220 250 250 250 354 550 250 250 354 550 221 " "$out"
	check "nothing stored from smuggling attempts" "0 0" \
		"$(count_files "$d/mail/alice/new") $(count_files "$d/mail/alice/tmp")"
	stop_pid "$SPID"
}

t_limits() {
	start_smtpd lim -m mail
	local d=$T/lim out i
	mkdir -p "$d/mail/alice"
	out=$( { printf 'HELO c\nMAIL FROM:<a@b.test>\n'
		 for i in $(seq 1 101); do printf 'RCPT TO:<alice+%d@localhost>\n' $i; done
		 printf 'DATA\nSubject: many\n\nx\n.\nQUIT\n'; } | smtp "$PORT" | norm)
	check "100 recipients, the 101st gets 452 4.5.3" "100|452 4.5.3 <alice+101@localhost>: Too many recipients|250 2.0.0 Ok: stored as ID" \
		"$(grep -c '^250 2.1.5' <<<"$out")|$(grep '^452' <<<"$out")|$(grep '^250 2.0.0 Ok: stored' <<<"$out")"
	check "mail to one mailbox through 100 addresses is stored once" "1" "$(count_files "$d/mail/alice/new")"

	rm -f "$d"/mail/alice/new/*
	out=$( { printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
		 for i in $(seq 1 101); do printf 'Received: from hop%d by hop%d; Fri, 27 Nov 2026 00:00:00 +0000\r\n' $i $i; done
		 printf 'Subject: loop\r\n\r\nx\r\n.\r\n'
		 printf 'MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
		 for i in $(seq 1 100); do printf 'Received: from hop%d by hop%d; Fri, 27 Nov 2026 00:00:00 +0000\r\n' $i $i; done
		 printf 'Subject: not yet a loop\r\n\r\nx\r\n.\r\nQUIT\r\n'; } | "$CHAT" 127.0.0.1 "$PORT" | norm | grep -E '^(554|250 2.0.0)')
	check "more than 100 Received: lines is a mail loop: 554 5.4.6; 100 is fine" "554 5.4.6 Too many Received: headers, mail loop (RFC 5321 6.3)
250 2.0.0 Ok: stored as ID" "$out"
	stop_pid "$SPID"
}

t_timeouts() {
	start_smtpd idle -m mail -t 1
	local d=$T/idle out rc
	mkdir -p "$d/mail/alice"
	out=$(printf '' | "$CHAT" -T 10 127.0.0.1 "$PORT" | norm); rc=$?
	check "idle timeout (-t): 421 4.4.2 and close" "220 mx.test ESMTP
421 4.4.2 mx.test Idle timeout, closing connection|0" "$out|$rc"
	out=$(printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nhalf a messa' |
		"$CHAT" -T 10 127.0.0.1 "$PORT" | norm | tail -n 1)
	check "timeout during DATA: 421 4.4.2, nothing stored" "421 4.4.2 mx.test Timeout during DATA, closing connection|0 0" \
		"$out|$(count_files "$d/mail/alice/new") $(count_files "$d/mail/alice/tmp")"
	stop_pid "$SPID"
}

t_sessions() {
	start_smtpd sess -m mail -c 2
	local d=$T/sess out h1 h2 c fds
	mkdir -p "$d/mail/alice"
	printf 'QUIT\r\n' | "$CHAT" -H 20 -T 30 127.0.0.1 "$PORT" >"$d/h1" & h1=$!
	printf 'QUIT\r\n' | "$CHAT" -H 20 -T 30 127.0.0.1 "$PORT" >"$d/h2" & h2=$!
	PIDS+=("$h1" "$h2")
	poll 200 grep -q 220 "$d/h1"
	poll 200 grep -q 220 "$d/h2"
	out=$(printf 'QUIT\r\n' | "$CHAT" -T 5 127.0.0.1 "$PORT" | norm)
	check "one session over -c: 421 4.3.2 at once" "421 4.3.2 mx.test Too many sessions, try again later" "$out"

	# A session's process keeps what smtpd inherited, adds its client
	# socket and a signal pipe of its own, and has closed the four the
	# parent holds: the listening socket, both ends of the parent's
	# signal pipe, the spare descriptor.
	fds=""
	for c in $(children_of "$SPID"); do
		fds+="$(comm -13 <(fd_list "$SPID") <(fd_list "$c") | awk '{ sub(/\[.*/, "", $2); print $2 }' | tr '\n' ' ')"
		fds+="$(comm -23 <(fd_list "$SPID") <(fd_list "$c") | wc -l | tr -d ' ')|"
	done
	check "a session's process holds its socket, its own signal pipe, nothing of the parent's" "pipe: pipe: socket: 4|pipe: pipe: socket: 4|" "$fds"

	kill "$h1" "$h2"; wait "$h1" "$h2" 2>/dev/null
	first_session_ok() { printf 'QUIT\r\n' | "$CHAT" -T 5 127.0.0.1 "$PORT" | grep -q '^220'; }
	check_true "sessions that end free their slots" poll 100 first_session_ok
	check "no zombies" "0" "$(settled_zombies_of "$SPID")"
	stop_pid "$SPID"
}

t_storage() {
	# A file-size limit on the server: writes fail with EFBIG.
	ULIMIT_F=64 start_smtpd full -m mail
	local d=$T/full out
	mkdir -p "$d/mail/alice" "$d/mail/bob"
	out=$( { printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n'
		 for i in $(seq 1 2000); do printf 'line %05d of a message that is larger than the file size limit\r\n' $i; done
		 printf '.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n'; } |
		"$CHAT" 127.0.0.1 "$PORT" | norm | tail -n 6 | head -n 5)
	check "storage failure (EFBIG): 452 4.3.1, then the session goes on" "452 4.3.1 Insufficient system storage
250 2.1.0 Sender <a@b.test> OK
250 2.1.5 Recipient <alice@localhost> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID" "$out"
	check "after a failed delivery nothing is left in any new/, tmp/ or the queue" "1 0 0 0 0 0" \
		"$(count_files "$d/mail/alice/new") $(count_files "$d/mail/alice/tmp") $(count_files "$d/mail/bob/new") $(count_files "$d/mail/bob/tmp") $(count_files "$d/queue/entries") $(count_files "$d/queue/tmp")"
	check "the failure is logged with its errno text" "1" "$(grep -c 'receive-failed error="File too large"' "$d/log")"
	stop_pid "$SPID"
}

t_disconnect() {
	start_smtpd disc -m mail
	local d=$T/disc out
	mkdir -p "$d/mail/alice"
	printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: cut\r\n\r\nhalf\r\n' |
		"$CHAT" -k 127.0.0.1 "$PORT" >/dev/null
	poll 200 grep -q 'data-aborted' "$d/log"
	check "client gone mid-DATA: nothing kept, logged" "0 0 1" \
		"$(count_files "$d/mail/alice/new") $(count_files "$d/mail/alice/tmp") $(grep -c 'data-aborted reason=disconnect' "$d/log")"
	printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\n' | "$CHAT" -k 127.0.0.1 "$PORT" >/dev/null
	printf 'HEL' | "$CHAT" -k 127.0.0.1 "$PORT" >/dev/null
	printf 'QUIT\r\n' | "$CHAT" -w -k 127.0.0.1 "$PORT" >/dev/null
	out=$(printf 'HELO c\nQUIT\n' | smtp "$PORT" | codes | tr '\n' ' ')
	check "abrupt disconnects at any point: the server lives on" "220 250 221 " "$out"
	stop_pid "$SPID"
}

t_shutdown() {
	start_smtpd stop -m mail
	local d=$T/stop h rc out
	mkdir -p "$d/mail/alice"
	printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nlate\r\n.\r\nQUIT\r\n' |
		"$CHAT" -H 1 -T 20 127.0.0.1 "$PORT" >"$d/h" & h=$!
	PIDS+=("$h")
	poll 200 grep -q 220 "$d/h"
	kill -TERM "$SPID"
	poll 200 grep -q 'stopping' "$d/log"
	refused() { ! printf 'QUIT\r\n' | "$CHAT" -T 2 127.0.0.1 "$PORT" 2>/dev/null | grep -q 220; }
	check_true "SIGTERM: no new sessions" refused
	wait "$h"
	poll 200 dead "$SPID"
	wait "$SPID"; rc=$?
	# the client holds (idle, no transaction) when the stop comes: 421
	# (test group sigterm: a transaction in progress is finished first)
	check "SIGTERM: the idle session gets 421 4.3.2, then exit 0" "220 421 |0|0" \
		"$(codes <"$d/h" | tr '\n' ' ')|$rc|$(count_files "$d/mail/alice/new")"
	out=$(grep -o 'stopping\|disconnect\|stopped' "$d/log" | tr '\n' ' ')
	check "the log shows the order: stopping, session ends, stopped" "stopping disconnect stopped " "$out"
}

t_logs() {
	start_smtpd logs -m mail
	local d=$T/logs out
	mkdir -p "$d/mail/alice"
	printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@localhost>\nRCPT TO:<nobody@localhost>\nDATA\nhi\n.\nQUIT\n' | smtp "$PORT" >/dev/null
	poll 100 grep -q disconnect "$d/log"
	out=$(sed -E -e 's/sid=[0-9a-f.]+/sid=S/' -e 's/id=[0-9A-Za-z.]+ path=[^ ]*/id=ID path=P/' -e 's/port=[0-9]+/port=P/' "$d/log")
	check "without -v: one line per event" "smtpd: listening addr=127.0.0.1 port=P name=mx.test
smtpd: sid=S connect client=127.0.0.1 relay=yes
smtpd: sid=S mail from=<a@b.test>
smtpd: sid=S rcpt to=<alice@localhost> status=250
smtpd: sid=S rcpt to=<nobody@localhost> status=550
smtpd: sid=S stored id=ID path=P
smtpd: sid=S disconnect" "$out"
	stop_pid "$SPID"
	start_smtpd logsv -m mail -v
	mkdir -p "$T/logsv/mail/alice"
	printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@localhost>\nDATA\n..dot\n.\nQUIT\n' | smtp "$PORT" >/dev/null
	poll 100 grep -q disconnect "$T/logsv/log"
	out=$(grep -E ' (C|S): ' "$T/logsv/log" | sed -E -e 's/.* ([CS]: )/\1/' | norm)
	check "-v: the whole dialogue as C: and S: lines" "S: 220 mx.test ESMTP
C: HELO c
S: 250 mx.test Hello c [127.0.0.1]
C: MAIL FROM:<a@b.test>
S: 250 2.1.0 Sender <a@b.test> OK
C: RCPT TO:<alice@localhost>
S: 250 2.1.5 Recipient <alice@localhost> OK
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: ..dot
C: .
S: 250 2.0.0 Ok: stored as ID
C: QUIT
S: 221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
}


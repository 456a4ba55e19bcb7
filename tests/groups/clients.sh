# shellcheck shell=bash
# tests/groups/clients.sh, sourced by test.sh
# smtpd against hostile clients (issue 8): HELO syntax and injection, empty
# lines, the queue entry, recipient case, memory, limits, signals, the clock,
# smaller RFC points, the harness itself
# Groups: see TEST_GROUPS below
TEST_GROUPS+=(empty_line error_limit junk)

# ---- a client held open by the shell (bash's /dev/tcp), for tests that must
# act between two commands: measure, signal, change the clock ------------------

# conn_open VAR PORT: connect; the descriptor goes into VAR; read the greeting.
conn_open() {
	eval "exec {$1}<>/dev/tcp/127.0.0.1/$2" || return 1
	conn_reply "${!1}" >/dev/null
}
# conn_send FD TEXT: TEXT goes out as it is (printf escapes are expanded).
conn_send() { printf "$2" >&"$1"; }
# conn_reply FD: one whole reply (lines up to "NNN "), CR removed; waits at
# most 20 s.  Status 1 if the server closed or did not answer.
conn_reply() {
	local line
	while IFS= read -r -t 20 line <&"$1"; do
		line=${line%$'\r'}
		echo "$line"
		[[ $line =~ ^[0-9]{3}- ]] || return 0
	done
	return 1
}
# conn_rest FD: everything until the server closes (at most 20 s).
conn_rest() { timeout 20 cat <&"$1" | tr -d '\r'; }
conn_close() { eval "exec $1>&-"; }

# ---- 2. an empty command line ---------------------------------------------------

t_empty_line() {
	start_smtpd empty -m mail
	local d=$T/empty out
	mkdir -p "$d/mail/alice"
	out=$(printf 'EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\n\r\nDATA\r\nhi\r\n.\r\n\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" | norm | grep -v '^250-')
	check "an empty line gets 500 5.5.2 and the session goes on (pipelined)" "220 mx.test ESMTP
250 HELP
250 2.1.0 Sender <a@b.test> OK
250 2.1.5 Recipient <alice@localhost> OK
500 5.5.2 Syntax error, empty command
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: queued as ID
500 5.5.2 Syntax error, empty command
221 2.0.0 mx.test closing connection" "$out"
	check "the message after the empty line is stored" "1" "$(count_files "$d/mail/alice/new")"
	out=$( { printf 'HELO x\r\n'; for i in $(seq 1 25); do printf '\r\n'; done; } | "$CHAT" 127.0.0.1 "$PORT" | codes | tally)
	check "empty lines count as errors: the 20th is followed by 421" "1*220 1*250 1*421 20*500" "$out"
	stop_pid "$SPID"
}

# "N*code" for each reply code, in code order (input: codes lines).
tally() { sort | uniq -c | awk '{ printf "%s%s*%s", (NR > 1 ? " " : ""), $1, $2 } END { print "" }'; }

# ---- 6. one error limit, one junk limit -----------------------------------------

t_error_limit() {
	start_smtpd errlim -m mail -r 10.0.0.0/8
	local d=$T/errlim out i
	mkdir -p "$d/mail/alice"
	# 5,000 pipelined RCPTs to unknown users: address harvesting without VRFY
	out=$( { printf 'HELO x\r\nMAIL FROM:<a@b.test>\r\n'
		 for i in $(seq 1 5000); do printf 'RCPT TO:<nouser%d@localhost>\r\n' "$i"; done; } |
		"$CHAT" -T 20 127.0.0.1 "$PORT" | norm)
	check "5,000 pipelined unknown recipients: 20 answers, then 421 4.7.0 and close" \
		"20|550 5.1.1 <nouser20@localhost>: User unknown|421 4.7.0 mx.test Too many errors, closing connection" \
		"$(grep -c '^550 5.1.1' <<<"$out")|$(grep '^550' <<<"$out" | tail -n 1)|$(tail -n 1 <<<"$out")"
	# syntax errors, unknown commands, bad sequence, refused recipients:
	# one limit.  19 errors of every kind, then the session still works
	out=$( { printf 'HELO x\r\n'
		 for i in 1 2 3 4; do printf 'XYZZY\r\nRCPT TO:<alice@localhost>\r\n'; done   # 500, 503
		 printf 'MAIL FROM:<a@b.test>\r\n'
		 for i in 1 2 3; do printf 'RCPT TO:alice\r\nRCPT TO:<x@remote.example>\r\nRCPT TO:<nobody@localhost>\r\n'; done  # 501 554 550
		 printf 'RCPT TO:<a/b@localhost>\r\nSTARTTLS\r\n'     # 550 5.1.3, 502
		 printf 'NOOP\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<nobody2@localhost>\r\nNOOP\r\n'; } |
		"$CHAT" 127.0.0.1 "$PORT" | norm | tail -n 4)
	check "19 errors of every kind leave the session working; the 20th ends it" "250 2.0.0 Ok
250 2.1.5 Recipient <alice@localhost> OK
550 5.1.1 <nobody2@localhost>: User unknown
421 4.7.0 mx.test Too many errors, closing connection" "$out"
	check "the log says why, for both sessions" "2" "$(grep -c 'too-many-errors count=20' "$d/log")"
	stop_pid "$SPID"
}

t_junk() {
	start_smtpd junk -m mail -V
	local d=$T/junk out
	mkdir -p "$d/mail/alice"
	out=$( { printf 'HELO x\r\n'
		 for i in $(seq 1 20); do printf 'NOOP\r\nRSET\r\nVRFY alice\r\nEXPN alice\r\nHELP\r\n'; done
		 printf 'NOOP\r\nQUIT\r\n'; } | "$CHAT" 127.0.0.1 "$PORT" | norm | grep -v '^214-' | codes | tally)
	check "100 NOOP/RSET/VRFY/EXPN/HELP are served, the 101st gets 421 4.7.0" "20*214 1*220 81*250 1*421" "$out"
	out=$( { printf 'HELO x\r\n'; for i in $(seq 1 101); do printf 'NOOP\r\n'; done; printf 'QUIT\r\n'; } |
		"$CHAT" 127.0.0.1 "$PORT" | norm | tail -n 2)
	check "the junk limit's reply, and nothing read after it" "250 2.0.0 Ok
421 4.7.0 mx.test Too many junk commands, closing connection" "$out"
	out=$( { printf 'HELO x\r\n'
		 for i in $(seq 1 60); do printf 'MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nm %d\r\n.\r\n' "$i"; done
		 printf 'QUIT\r\n'; } | "$CHAT" -T 20 127.0.0.1 "$PORT" | codes | tally)
	check "a client that sends mail is not junk: 60 messages in one session" "1*220 1*221 181*250 60*354" "$out"
	stop_pid "$SPID"
}

# shellcheck shell=bash
# tests/groups/session.sh, sourced by test.sh
# smtpd: the build, the greeting, a session, the body, pipelining, commands, parameters
# Groups: build greeting defaults delivery body pipelining commands params
TEST_GROUPS+=(build greeting defaults delivery body pipelining commands params)

# ---- tests: the build -----------------------------------------------------------

t_build() {
	local cc out
	for cc in gcc clang; do
		if ! command -v $cc >/dev/null; then
			skip "build with $cc: not installed"
			continue
		fi
		out=$($cc -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic -O2 -Werror \
			-o "$T/smtpd.$cc" smtpd.c 2>&1)
		check "smtpd builds warning-free with $cc" "" "$out"
	done
}

# ---- tests: greeting, HELO/EHLO, the session -------------------------------------

t_greeting() {
	start_smtpd greet -m mail
	local out
	out=$(printf 'EHLO client.test\nHELO client.test\nQUIT\n' | smtp "$PORT" | norm)
	check "greeting, EHLO extensions, HELO, QUIT" "220 mx.test ESMTP
250-mx.test Hello client.test [127.0.0.1]
250-PIPELINING
250-SIZE 10485760
250-8BITMIME
250-SMTPUTF8
250-ENHANCEDSTATUSCODES
250 HELP
250 mx.test Hello client.test [127.0.0.1]
221 2.0.0 mx.test closing connection" "$out"
	out=$(printf 'HELO\nEHLO\nEHLO   \nQUIT\n' | smtp "$PORT" | norm)
	check "HELO and EHLO need an argument: 501" "220 mx.test ESMTP
501 5.5.4 Syntax: HELO <hostname>
501 5.5.4 Syntax: EHLO <hostname>
501 5.5.4 Syntax: EHLO <hostname>
221 2.0.0 mx.test closing connection" "$out"
	out=$(printf 'HELO a\r\nNOOP\nnoop x\r\nQUIT\n' | "$CHAT" 127.0.0.1 "$PORT" | norm)
	check "command lines may end in CRLF or bare LF" "220 mx.test ESMTP
250 mx.test Hello a [127.0.0.1]
250 2.0.0 Ok
250 2.0.0 Ok
221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
}

t_defaults() {
	# With no options at all: 127.0.0.1:2525, ./mail, ./queue.
	local dir=$T/defaults out pid
	mkdir -p "$dir"
	if printf 'QUIT\r\n' | "$CHAT" -T 2 127.0.0.1 2525 >/dev/null 2>&1; then
		skip "smtpd on its defaults: port 2525 is taken on this machine"
		return
	fi
	(cd "$dir" && exec "$TOP/smtpd") 2>"$dir/log" &
	pid=$!
	PIDS+=("$pid")
	poll 200 grep -q listening "$dir/log"
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<postmaster>\nDATA\nhi\n.\nQUIT\n' |
		smtp 2525 | codes | tr '\n' ' ')
	check "no options: serves 127.0.0.1:2525" "220 250 250 250 354 250 221 " "$out"
	check "no options: stores into ./mail, queue in ./queue" "1 yes" \
		"$(count_files "$dir/mail/postmaster/new") $([ -d "$dir/queue" ] && echo yes)"
	stop_pid "$pid"
}

t_delivery() {
	start_smtpd deliv -m mail
	local d=$T/deliv out f
	mkdir -p "$d/mail/alice" "$d/mail/bob"
	out=$(smtp "$PORT" <<'S' | norm
EHLO client.test
MAIL FROM:<carol@example.com>
RCPT TO:<alice@localhost>
DATA
From: Carol <carol@example.com>
To: Alice <alice@localhost>
Subject: test

Hello Alice.
.
QUIT
S
)
	check "a whole session" "220 mx.test ESMTP
250-mx.test Hello client.test [127.0.0.1]
250-PIPELINING
250-SIZE 10485760
250-8BITMIME
250-SMTPUTF8
250-ENHANCEDSTATUSCODES
250 HELP
250 2.1.0 Sender <carol@example.com> OK
250 2.1.5 Recipient <alice@localhost> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
221 2.0.0 mx.test closing connection" "$out"
	f=$(only_file "$d/mail/alice/new")
	check "Maildir file: Return-Path, Delivered-To, Received, message with LF ends" \
"Return-Path: <carol@example.com>
Delivered-To: alice@localhost
From: Carol <carol@example.com>
To: Alice <alice@localhost>
Subject: test

Hello Alice." "$(strip_received "$f")"
	check "Received: line in RFC 5321 4.4 form, for the one recipient" "yes" \
		"$(sed -n '3,5p' "$f" | tr '\n' '|' | grep -Eq '^Received: from client\.test \(\[127\.0\.0\.1\]\)\|	by mx\.test with ESMTP id <[0-9]+\.M[0-9]{6}P[0-9]+Q[0-9]+@mx\.test>\|	for <alice@localhost>; [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} [-+][0-9]{4}\|$' && echo yes)"
	check "Maildir name <secs>.M<usecs>P<pid>Q<n>.<host>, nothing left in tmp/" "yes 0" \
		"$(basename "$f" | grep -Eq '^[0-9]+\.M[0-9]{6}P[0-9]+Q[0-9]+\.mx\.test$' && echo yes) $(count_files "$d/mail/alice/tmp")"
	check "the reply's id names the file" "$(basename "$f" .mx.test)" \
		"$(grep -o 'stored id=[^ ]*' "$d/log" | head -n 1 | cut -d= -f2)"

	# Two recipients: a copy each, each with its own Delivered-To, no "for".
	out=$(printf 'HELO c\nMAIL FROM:<>\nRCPT TO:<alice@localhost>\nRCPT TO:<bob@localhost>\nDATA\nSubject: two\n\nx\n.\nQUIT\n' |
		smtp "$PORT" | codes | tr '\n' ' ')
	check "two recipients, null sender" "220 250 250 250 250 354 250 221 " "$out"
	f=$(only_file "$d/mail/bob/new")
	check "each copy has its Delivered-To; Return-Path <> for the null sender" "Return-Path: <>
Delivered-To: bob@localhost
Subject: two

x" "$(strip_received "$f")"
	check "no 'for' clause with more than one recipient" "0" "$(grep -c 'for <' "$f")"

	# A cloud host's long HELO name: its address goes on the next line.
	rm -f "$d"/mail/alice/new/*
	printf 'EHLO ec2-203-0-113-250.ap-southeast-2.compute.amazonaws.com\nMAIL FROM:<>\nRCPT TO:<alice@localhost>\nDATA\nSubject: cloud\n.\nQUIT\n' |
		smtp "$PORT" >/dev/null
	f=$(only_file "$d/mail/alice/new")
	check "Received: after a long HELO name, ([address]) on a line of its own, no line over 78" \
		"Received: from ec2-203-0-113-250.ap-southeast-2.compute.amazonaws.com|	([127.0.0.1])|" \
		"$(sed -n '3,4p' "$f" | tr '\n' '|')$(awk 'length($0) > 78 { print NR ": " $0 }' "$f")"
	stop_pid "$SPID"
}

t_body() {
	start_smtpd body -m mail
	local d=$T/body f
	mkdir -p "$d/mail/alice"
	# dots, an 8-bit body, a line of spaces, an empty last line
	printf 'EHLO c\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n..\r\n...\r\n..x\r\n.y\r\nmid.dle\r\n \r\nGr\xc3\xbc\xc3\x9fe \xff\xfe\r\n\r\n.\r\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" >/dev/null
	f=$(only_file "$d/mail/alice/new")
	check "dot-unstuffing (RFC 5321 4.5.2) and 8-bit bytes stored exactly" \
		"$(printf '.\n..\n.x\ny\nmid.dle\n \nGr\xc3\xbc\xc3\x9fe \xff\xfe\n\n' | od -c)" \
		"$(strip_received "$f" | tail -n +3 | od -c)"
	rm -f "$d"/mail/alice/new/*
	printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n.\r\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" >/dev/null
	check "an empty message (DATA then .) is stored as headers only" "2" \
		"$(strip_received "$(only_file "$d/mail/alice/new")" | wc -l | tr -d ' ')"
	rm -f "$d"/mail/alice/new/*
	# a first line that starts with a space would continue our Received:
	printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n (authenticated as ceo)\r\nSubject: x\r\n.\r\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" >/dev/null
	f=$(only_file "$d/mail/alice/new")
	check "a message that starts with a space or tab cannot continue our Received: (an empty line ends it)" \
		"	for <alice@localhost>; DATE|| (authenticated as ceo)|Subject: x|" \
		"$(sed -n '5,8p' "$f" | sed 's/; .*/; DATE/' | tr '\n' '|')"
	rm -f "$d"/mail/alice/new/*
	# a 5 MB message in one write, compared byte for byte
	awk 'BEGIN { for (i = 0; i < 80000; i++)
		printf "%sline %06d abcdefghijklmnopqrstuvwxyz0123456789.ABCDEFGHIJKLM\n", (i % 7 ? "" : "."), i }' >"$d/big.txt"
	{ printf 'EHLO c\r\nMAIL FROM:<a@b.test> SIZE=5200000\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
	  sed -e 's/^\./../' -e 's/$/\r/' "$d/big.txt"; printf '.\r\nQUIT\r\n'; } >"$d/big.smtp"
	check "a 5 MB message is accepted" "220 250- 250- 250- 250- 250- 250- 250 250 250 354 250 221 " \
		"$("$CHAT" -T 30 127.0.0.1 "$PORT" <"$d/big.smtp" | codes | tr '\n' ' ')"
	f=$(only_file "$d/mail/alice/new")
	check_true "the 5 MB message is stored byte for byte" cmp -s "$d/big.txt" <(strip_received "$f" | tail -n +3)
	stop_pid "$SPID"
}

t_pipelining() {
	start_smtpd pipe -m mail
	local d=$T/pipe out i script
	mkdir -p "$d/mail/alice" "$d/mail/bob"
	# MAIL, three RCPT (one refused) and DATA in one write; replies in order.
	out=$(printf 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<nobody@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<c@d.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n' |
		"$CHAT" 127.0.0.1 "$PORT" | norm | grep -v '^250-')
	check "PIPELINING: a whole group in one write, replies in order" "220 mx.test ESMTP
250 HELP
250 2.1.0 Sender <a@b.test> OK
250 2.1.5 Recipient <alice@localhost> OK
550 5.1.1 <nobody@localhost>: User unknown
250 2.1.5 Recipient <bob@localhost> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
250 2.1.0 Sender <c@d.test> OK
250 2.1.5 Recipient <alice@localhost> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
221 2.0.0 mx.test closing connection" "$out"
	check "pipelined messages stored" "2 1" "$(count_files "$d/mail/alice/new") $(count_files "$d/mail/bob/new")"

	# 20 concurrent sessions (the default limit), each with one message.
	rm -f "$d"/mail/alice/new/*
	local pids=()
	for ((i = 0; i < 20; i++)); do
		printf 'HELO c%d\nMAIL FROM:<s%d@b.test>\nRCPT TO:<alice@localhost>\nDATA\nSubject: %d\n\nmessage %d\n.\nQUIT\n' $i $i $i $i |
			smtp "$PORT" -l -T 20 >"$d/conc.$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	out=$(cat "$d"/conc.* | grep -c '^250 2.0.0 Ok: stored')
	check "20 concurrent sessions all delivered" "20 20" "$out $(count_files "$d/mail/alice/new")"
	check "each concurrent message stored intact" "$(seq 0 19 | sed 's/^/message /' | sort)" \
		"$(tail -q -n 1 "$d"/mail/alice/new/* | sort)"
	check "no zombie children after the sessions" "0" "$(settled_zombies_of "$SPID")"
	stop_pid "$SPID"
}


t_commands() {
	start_smtpd cmds -m mail
	local d=$T/cmds out
	mkdir -p "$d/mail/alice"
	out=$(smtp "$PORT" -l <<'S' | norm
MAIL FROM:<a@b.test>
RCPT TO:<alice@localhost>
DATA
helo c
RCPT TO:<alice@localhost>
DATA
mail from:<a@b.test>
MAIL FROM:<a@b.test>
DATA
rcpt to:<alice@localhost>
rset
RCPT TO:<alice@localhost>
noop
NOOP with an argument
RSET x
DATA x
QUIT
S
)
	check "commands out of order get 503; case-insensitive verbs" "220 mx.test ESMTP
503 5.5.1 Send HELO or EHLO first
503 5.5.1 Send HELO or EHLO first
503 5.5.1 Send HELO or EHLO first
250 mx.test Hello c [127.0.0.1]
503 5.5.1 Need MAIL before RCPT
503 5.5.1 Need MAIL and RCPT before DATA
250 2.1.0 Sender <a@b.test> OK
503 5.5.1 Sender already given (RSET starts over)
554 5.5.1 No valid recipients
250 2.1.5 Recipient <alice@localhost> OK
250 2.0.0 Ok
503 5.5.1 Need MAIL before RCPT
250 2.0.0 Ok
250 2.0.0 Ok
501 5.5.4 Syntax: RSET
503 5.5.1 Need MAIL and RCPT before DATA
221 2.0.0 mx.test closing connection" "$out"

	out=$(printf 'HELO c\nXYZZY\nSTARTTLS\nAUTH PLAIN x\nBDAT 10\nTURN\nSEND FROM:<a@b>\nSOML FROM:<a@b>\nSAML FROM:<a@b>\nETRN x\nQUIT\n' | smtp "$PORT" -l | norm)
	check "unknown command 500 5.5.2; known but unsupported 502 5.5.1" "220 mx.test ESMTP
250 mx.test Hello c [127.0.0.1]
500 5.5.2 Command unrecognized
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
502 5.5.1 Command not implemented
221 2.0.0 mx.test closing connection" "$out"

	out=$( (printf 'HELO c\r\nNOOP %0600d\r\nNOOP\r\nNO\0OP\r\nNOOP \xc3\xa9\r\nNOOP \xe9\r\n' 0; printf 'QUIT\r\n') | "$CHAT" -l 127.0.0.1 "$PORT" | norm)
	check "line over 512 octets, NUL, 8-bit UTF-8 outside an address: 500 5.5.2; not UTF-8: 501 5.5.4; session goes on" "220 mx.test ESMTP
250 mx.test Hello c [127.0.0.1]
500 5.5.2 Line too long (limit 512 octets with CRLF)
250 2.0.0 Ok
500 5.5.2 Commands are 7-bit ASCII without NUL bytes
500 5.5.2 Commands are 7-bit ASCII without NUL bytes
501 5.5.4 Not UTF-8: a stray, overlong or surrogate byte sequence (RFC 3629)
221 2.0.0 mx.test closing connection" "$out"
	out=$( (printf 'NOOP %0505d\r\n' 0; printf 'NOOP %0506d\r\n' 0; printf 'QUIT\r\n') | "$CHAT" -l 127.0.0.1 "$PORT" | codes | tr '\n' ' ')
	check "512 octets with CRLF is the limit, 513 is too long" "220 250 500 221 " "$out"

	out=$(for i in $(seq 1 22); do echo "BOGUS$i"; done | smtp "$PORT" -l | codes | tr '\n' ' ')
	check "20 bad commands: the 20th reply is followed by 421 4.7.0 and close" "220$(printf ' 500%.0s' $(seq 1 20)) 421 " "$out"

	out=$(printf 'HELP\nHELP mail\nHELP vrfy\nHELP nosuch\nQUIT\n' | smtp "$PORT" -l | norm)
	check "HELP lists the commands, HELP <command> explains one" "220 mx.test ESMTP
214-2.0.0 Commands, in the order of a session:
214-2.0.0 HELO EHLO MAIL RCPT DATA RSET VRFY EXPN HELP NOOP QUIT
214 2.0.0 \"HELP <command>\" explains one. The protocol is RFC 5321.
214-2.0.0 MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]: start a transaction;
214-2.0.0 <> is the null sender that bounces use (RFC 5321 4.1.1.2);
214 2.0.0 SMTPUTF8 allows UTF-8 in the addresses (RFC 6531 3.4)
214 2.0.0 VRFY <user>: does this mailbox exist? Off unless smtpd runs with -V (RFC 5321 4.1.1.6)
504 5.5.4 HELP: no such command: nosuch
221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
}

t_params() {
	start_smtpd params -m mail -s 2000
	local d=$T/params out
	mkdir -p "$d/mail/alice"
	out=$(smtp "$PORT" -l <<'S' | norm | grep -v '^250-'
EHLO c
MAIL FROM:<a@b.test> SIZE=2001
MAIL FROM:<a@b.test> SIZE=12x
MAIL FROM:<a@b.test> BODY=9BIT
MAIL FROM:<a@b.test> FOO=bar
MAIL FROM:a@b.test
MAIL FROM:<a@b@c.test>
MAIL FROM:<nodomain>
MAIL FROM: <a@b.test> SIZE=2000 BODY=7BIT
RCPT TO:<alice@localhost> NOTIFY=NEVER
RCPT TO:<alice@localhost>
QUIT
S
)
	check "MAIL parameters SIZE and BODY checked; others 555" "220 mx.test ESMTP
250 HELP
552 5.3.4 Message size exceeds fixed limit of 2000
501 5.5.4 Bad SIZE parameter
501 5.5.4 BODY must be 7BIT or 8BITMIME
555 5.5.4 Unsupported parameter FOO=bar
501 5.1.7 Bad sender address syntax
501 5.1.7 Bad sender address syntax
501 5.1.7 Bad sender address syntax
250 2.1.0 Sender <a@b.test> OK
555 5.5.4 Unsupported parameter NOTIFY=NEVER
250 2.1.5 Recipient <alice@localhost> OK
221 2.0.0 mx.test closing connection" "$out"
	check "SIZE advertises the -s limit" "250-SIZE 2000" \
		"$(printf 'EHLO c\nQUIT\n' | smtp "$PORT" | tr -d '\r' | grep SIZE)"
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test> SIZE=10\nQUIT\n' | smtp "$PORT" -l | norm | sed -n 3p)
	check "parameters need EHLO" "555 5.5.4 Parameters need EHLO" "$out"
	# over the limit: read to the end, 552, and the session goes on
	out=$( { printf 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
		 for i in $(seq 1 100); do printf 'a line of forty characters, more or less\r\n'; done
		 printf '.\r\nNOOP\r\nQUIT\r\n'; } | "$CHAT" 127.0.0.1 "$PORT" | norm | grep -v '^250-' | tail -n 4)
	check "message over -s: 552 5.3.4 after its end, session goes on" "354 End data with <CR><LF>.<CR><LF>
552 5.3.4 Message size exceeds fixed limit of 2000
250 2.0.0 Ok
221 2.0.0 mx.test closing connection" "$out"
	check "nothing stored of the big message" "0 0" \
		"$(count_files "$d/mail/alice/new") $(count_files "$d/mail/alice/tmp")"
	stop_pid "$SPID"
}

# One RCPT per line of $2 in one session; prints "address code" lines.
rcpt_codes() {
	local port=$1 list=$2 a
	{ printf 'HELO c\n'
	  while IFS= read -r a; do printf 'MAIL FROM:<t@b.test>\nRCPT TO:%s\nRSET\n' "$a"; done <<<"$list"
	  printf 'QUIT\n'; } | smtp "$port" -l | tr -d '\r' | grep -E '^(5|4)[0-9][0-9] |Recipient' |
		sed -E 's/^250 2.1.5 Recipient (.*) OK$/250 \1/; s/^([0-9]{3}) ([0-9.]+) (<[^>]*>)?.*/\1 \2/'
}

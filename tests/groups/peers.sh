# shellcheck shell=bash
# tests/groups/peers.sh, sourced by test.sh
# smtp_send against peers that do what real peers do (issue 9): backup
# MX hosts that are ourselves, huge and bare EHLO replies, injected
# addresses, long MX lists, servers without 8BITMIME, out of step, with
# recipient limits or closing with 421; hostile queue entries; bounces;
# and the relay path (issue 13): one write per group, parallel queue runs.
# Groups: peer_loop peer_ehlo peer_inject peer_mx peer_8bit peer_data
#         peer_wire peer_domain peer_limit peer_421 peer_entry peer_bounce
#         peer_small peer_nagle peer_jobs
TEST_GROUPS+=(peer_loop peer_ehlo peer_inject peer_mx peer_8bit peer_data peer_wire peer_domain
	peer_limit peer_421 peer_entry peer_bounce peer_small peer_nagle peer_jobs peer_size)

PEER_ZONE='# the peers: 127.0.0.2x
backup.test          MX    10 primary.backup.test
backup.test          MX    20 me.test
primary.backup.test  A     127.0.0.21
me.test              A     127.0.0.22
only.test            MX    10 me.test
disguised.test       MX    10 primary.backup.test
disguised.test       MX    20 mx.disguised.test
mx.disguised.test    A     127.0.0.23
example.org          MX    10 mx.example.org
mx.example.org       A     127.0.0.24
far.test             MX    10 mx.far.test
mx.far.test          A     127.0.0.25
home.test            MX    10 mx.home.test
mx.home.test         A     127.0.0.26
expired.test         MX    10 mx.expired.test
mx.expired.test      A     127.0.0.27
later.test           MX    10 mx.later.test
mx.later.test        A     127.0.0.28
mixed.test           MX    5 bad\001name.many.test
mixed.test           MX    10 mx11.many.test
big.test             TRUNCATE
big.test             MX    5 mx.example.org
nil.test             TCPEMPTY
'
# many.test: 40 MX records, preferences 50 down to 11, worst first
many_zone() {
	local i
	for ((i = 50; i >= 11; i--)); do echo "many.test MX $i mx$i.many.test"; done
	echo "mx11.many.test A 127.0.0.24"
	echo "mx12.many.test A 127.0.0.24"
	# huge.test: 100 MX records, 200 down to 101, worst first: more than
	# an answer's records smtp_send keeps (DNS_MAX_RR), so over TCP
	echo "huge.test TRUNCATE"
	for ((i = 200; i >= 101; i--)); do echo "huge.test MX $i mx$i.huge.test"; done
	echo "mx101.huge.test A 127.0.0.24"
}

# put_entry QUEUE NAME ENVELOPE-LINE... < message: a queue entry written
# by hand, as smtpd writes them (format in NOTES.md) or as it never would.
put_entry() {
	local q=$1 name=$2; shift 2
	mkdir -p "$q/entries" "$q/tmp"
	{ printf '%s\n' "$@"; echo; cat; } >"$q/entries/$name"
}

# chars C N: N times the character C
chars() { printf "%${2}s" '' | tr ' ' "$1"; }

# traced FILE COMMAND...: run COMMAND under strace, its connect() and
# write() calls to FILE (LeakSanitizer cannot run under ptrace: off here)
traced() {
	local file=$1; shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -qq -f -s 8192 -e trace=connect,write -o "$file" "$@"
}
# The strings written to sockets (descriptors given to connect()), one a line.
socket_writes() {
	awk '{ sub(/^[0-9]+ +/, "") }
	     /^connect\(/ { split($0, a, /[(,]/); sock[a[2]] = 1 }
	     /^write\(/ { split($0, a, /[(,]/); if (a[2] in sock) print }' "$1" |
		sed -E 's/^write\([0-9]+, "(.*)", [0-9]+\) += [0-9]+$/\1/'
}
can_strace() { command -v strace >/dev/null && strace -qq -o /dev/null true 2>/dev/null; }

# The data a fake server received: the lines after DATA up to ".".
data_of() {
	sed -n '/^DATA\r$/,/^\.\r$/p' "$1" | sed -e '1d' -e '$d'
}

# fake NAME MODE [options]: tests/fakesmtp on 127.0.0.1, a free port,
# capturing what it receives in $T/NAME.in.  Sets SPID and PORT.
fake() {
	local name=$1 mode=$2; shift 2
	rm -f "$T/$name.in"
	start_server "$T/$name.log" "$TOP/tests/fakesmtp" -a 127.0.0.1 -p 0 -o "$T/$name.in" "$@" "$mode"
}

t_peer_loop() {
	# RFC 5321 5.1: mail we relay must not come back to us
	start_dnsd peerloop <<<"$PEER_ZONE"
	start_smtpd peerme -a 127.0.0.22 -n me.test -m mail -q queue -d me.test
	local me=$SPID P=$PORT d=$T/peerme q=$T/peerme/queue out rc e now
	now=$(date +%s)
	mkdir -p "$d/mail/sender" "$d/mail/x"
	out=$(printf 'HELO c\nMAIL FROM:<sender@me.test>\nRCPT TO:<user@backup.test>\nDATA\nSubject: loop\n\nx\n.\nQUIT\n' |
		SMTP_HOST=127.0.0.22 smtp "$P" | codes | tr '\n' ' ')
	e=$(ls "$q/entries")
	"$SEND" -q "$q" -R "$DNS" -P "$P" -H me.test -T 2 2>"$d/run1"; rc=$?
	check "backup MX is me: it and worse dropped; the primary is down: deferred, no connection to me" \
		"220 250 250 250 354 250 221 |75|$e|attempts 1|1" \
		"$out|$rc|$(ls "$q/entries")|$(grep '^attempts' "$q/entries/$e")|$(grep -c ' connect client=' "$d/log")"
	out=$("$SEND" -R "$DNS" -P "$P" -H ME.test. -M backup.test); rc=$?
	check "-M: the route without ourselves (-H in any case, trailing dot)" "route to backup.test
  MX records of backup.test, best first:
    10 primary.backup.test: 127.0.0.21
  1 MX records dropped: ME.test. (-H) is one of them; it and every MX as bad or worse would loop|0" "$out|$rc"
	rm -f "$q/entries/$e"
	# we are the best MX: nothing is left, 554 5.4.6; the bounce is our
	# own, and goes to our own smtpd (local delivery, not a relay)
	printf 'HELO c\nMAIL FROM:<sender@me.test>\nRCPT TO:<user@only.test>\nDATA\nSubject: only\n\nx\n.\nQUIT\n' |
		SMTP_HOST=127.0.0.22 smtp "$P" >/dev/null
	"$SEND" -q "$q" -R "$DNS" -P "$P" -H me.test -T 2 2>"$d/run2"; rc=$?
	check "best MX is me: 554 5.4.6; our bounce comes home; queue empty" \
		"0|1|0|Status: 5.4.6" \
		"$rc|$(grep -c 'failed relay=none reply="554 5.4.6 mail for only.test loops back to myself"' "$d/run2")|$(count_files "$q/entries")|$(grep -h '^Status:' "$d"/mail/sender/new/* 2>/dev/null)"
	rm -f "$d"/mail/sender/new/*
	# a server that greets with our name is us, whatever the route said
	put_entry "$q" g1 'version 1' 'id g1' 'sender <sender@me.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <x@me.test>' <<<$'Subject: greeting\n\nx'
	"$SEND" -q "$q" -S "127.0.0.22:$P" -H me.test 2>"$d/run3"; rc=$?
	check "queue run, the server greets as us: 554 5.4.6, nothing relayed to it, our own bounce is" \
		"0|1|0|1" \
		"$rc|$(grep -c '<x@me.test> failed relay=none reply="554 5.4.6 mail for me.test loops back to myself"' "$d/run3")|$(count_files "$d/mail/x/new")|$(count_files "$d/mail/sender/new")"
	out=$(printf 'Subject: s\n\nx\n' | "$SEND" -S "127.0.0.22:$P" -H me.test -f s@me.test x@me.test 2>&1); rc=$?
	check "a submission (stdin) to our own server is no loop: sent" "0|1" "$rc|$(count_files "$d/mail/x/new")"
	stop_pid "$me"
	fake peerehloname plain -n other.test -e me.test
	put_entry "$q" g2 'version 1' 'id g2' 'sender <s@c.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <x@p.test>' <<<$'Subject: ehlo\n\nx'
	"$SEND" -q "$q" -S "127.0.0.1:$PORT" -H me.test 2>"$d/run4"; rc=$?
	check "queue run, the EHLO reply names us: disconnected, 554 5.4.6; only our bounce (from <>) was sent" \
		"0|1|MAIL FROM:<>" \
		"$rc|$(grep -c '<x@p.test> failed relay=none reply="554 5.4.6 mail for p.test loops back to myself"' "$d/run4")|$(grep -a '^MAIL FROM' "$T/peerehloname.in" | cut -d' ' -f1-2 | tr -d '\r' | sort -u | tr '\n' ' ' | sed 's/ $//')"
	stop_pid "$SPID"
	# a backup MX whose DNS name is another but whose greeting (not its
	# EHLO reply) names us: the better primary (down) was tried, so the
	# mail waits for it
	start_server "$T/peerloop/disguised.log" "$TOP/tests/fakesmtp" -a 127.0.0.23 -p "$P" -n me.test -e mx.disguised.test plain
	put_entry "$q" g3 'version 1' 'id g3' 'sender <s@c.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <x@disguised.test>' <<<$'Subject: disguised\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -H me.test -T 2 2>"$d/run5"; rc=$?
	check "a backup MX greets as us, a better one was tried: deferred (75), not failed" "75|1" \
		"$rc|$(grep -c '<x@disguised.test> deferred' "$d/run5")"
	stop_pid "$SPID"
	stop_pid "$DPID"
}

t_peer_ehlo() {
	# RFC 5321 4.1.1.1: EHLO keywords read by length; valgrind (or, in
	# the sanitized build, ASan) watches the parser
	local mode out rc vg=() d=$T/peerehlo
	for mode in bareehlo bigehlo; do
		mkdir -p "$d/$mode"
		if [ -z "${SANITIZED:-}" ] && command -v valgrind >/dev/null; then
			vg=(valgrind -q --error-exitcode=99 --log-file="$d/$mode/vg.%p")
		fi
		fake "peerehlo-$mode" "$mode"
		out=$(printf 'Subject: e\n\nascii\n' | "${vg[@]}" "$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f s@c.test x@y.test 2>&1); rc=$?
		check "EHLO reply ($mode): no read past a line, sent (exit 0)${vg:+, valgrind clean}" "0|1|" \
			"$rc|$(echo "$out" | grep -c '> sent relay=')|$(cat "$d/$mode"/vg.* 2>/dev/null | head -n 20)"
		stop_pid "$SPID"
	done
	check "bare 250 ends the EHLO reply; PIPELINING before it was seen (DATA before the MAIL reply)" \
		"DATA" "$(grep -a -A3 'C: MAIL FROM' <<<"$(printf 'Subject: e\n\nascii\n' | { fake peerehlo-p bareehlo; "$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f s@c.test x@y.test 2>&1; stop_pid "$SPID"; })" | sed -n 's/.*C: \(DATA\)$/\1/p')"
}

t_peer_inject() {
	# the sendmail-wrapper attack: CR LF in an address on the command line
	local out rc
	fake peerinject plain
	out=$(printf 'Subject: i\n\nbody\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test $'ok@p.test>\r\nRCPT TO:<injected@evil.test' 2>&1); rc=$?
	check "CR LF in a recipient: refused (64), no connection, the attempt visible in the log" \
		'64|0|smtp_send: bad recipient address: ok@p.test>\x0d\x0aRCPT TO:<injected@evil.test' \
		"$rc|$(grep -c connection "$T/peerinject.log")|$out"
	out=$(printf 'Subject: i\n\nbody\n' | "$SEND" -S "127.0.0.1:$PORT" -f $'a@c.test>\r\nRCPT TO:<injected@evil.test' x@p.test 2>&1); rc=$?
	check "CR LF in -f: refused (64), no connection" "64|0" "$rc|$(grep -c connection "$T/peerinject.log")"
	for a in 'a b@p.test' 'ok@p.test>' '<ok@p.test' $'tab\t@p.test' 'a@@p.test' 'a@b@p.test'; do
		printf 'x\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test "$a" 2>/dev/null
		echo "$?"
	done >"$T/peerinject.rc"
	check "unquoted space, unbalanced <>, a tab, two '@' outside quotes: each refused (64)" "64 64 64 64 64 64" \
		"$(tr '\n' ' ' <"$T/peerinject.rc" | sed 's/ $//')"
	printf 'x\n' | "$SEND" -S "127.0.0.1:$PORT" -f '<bob@c.test>' '"john doe"@p.test' '<ann@p.test>' 2>/dev/null; rc=$?
	check "-f '<bob@c.test>' is bob@c.test; a quoted space and <ann@p.test> are fine" \
		"0|MAIL FROM:<bob@c.test>|RCPT TO:<\"john doe\"@p.test>|RCPT TO:<ann@p.test>" \
		"$rc|$(grep -a -o 'MAIL FROM:<[^>]*>' "$T/peerinject.in")|$(grep -a -o 'RCPT TO:<"john doe"@p.test>' "$T/peerinject.in")|$(grep -a -o 'RCPT TO:<ann@p.test>' "$T/peerinject.in")"
	: >"$T/peerinject.in"
	out=$(printf 'To: ok@p.test>\nSubject: t\n\nx\n' | "$SEND" -t -S "127.0.0.1:$PORT" -f s@c.test 2>&1); rc=$?
	check "-t: an unbalanced header address is a data error (65), nothing sent" "65|0" \
		"$rc|$(grep -a -c 'RCPT' "$T/peerinject.in")"
	out=$(printf 'To: "a\001b"@p.test\nSubject: t\n\nx\n' | "$SEND" -t -S "127.0.0.1:$PORT" -f s@c.test 2>&1); rc=$?
	check "-t: a control byte in a header address: 65" "65" "$rc"
	# RFC 5322 3.2.1: "Smith\\" is a display name that ends in a
	# backslash; its closing quote ends the quotes, and the recipients
	# after it are recipients (they were dropped without a word, exit 0)
	# header_rcpts HEADER-LINE...: send with -t; "rc|the RCPT lines"
	header_rcpts() {
		: >"$T/peerinject.in"
		printf '%s\n' "$@" 'Subject: t' '' 'x' | "$SEND" -t -S "127.0.0.1:$PORT" -f s@c.test 2>/dev/null
		echo "$?|$(grep -a '^RCPT' "$T/peerinject.in" | tr -d '\r' | tr '\n' ' ' | sed 's/ $//')"
	}
	check "-t: a quoted-pair in a display name: every recipient after it is sent to" \
		"0|RCPT TO:<x@p.test> RCPT TO:<y@p.test> RCPT TO:<z@p.test> RCPT TO:<w@p.test>" \
		"$(header_rcpts 'To: "Smith\\" <x@p.test>, y@p.test' 'Bcc: "a\"b" <z@p.test>, w@p.test')"
	check "-t: a quoted-pair in a comment: its ')' does not end it" \
		"0|RCPT TO:<x@p.test> RCPT TO:<y@p.test>" "$(header_rcpts 'To: x@p.test (c \) d, e), y@p.test')"
	check "-t: the ':' of an IPv6 literal starts no group, a group's does" \
		"0|RCPT TO:<x@[IPv6:::1]> RCPT TO:<y@p.test>" "$(header_rcpts 'To: x@[IPv6:::1], group: y@p.test;')"
	local open
	for open in 'x@p.test (a "b, y@p.test' '"x, y@p.test' 'x@p.test, <y@p.test, z@p.test'; do
		: >"$T/peerinject.in"
		out=$(printf '%s\n' "To: $open" 'Subject: t' '' 'x' |
			"$SEND" -t -S "127.0.0.1:$PORT" -f s@c.test 2>&1); rc=$?
		check "-t: To: $open: unclosed, a data error (65), nothing sent" "65|0|1" \
			"$rc|$(grep -ac '^RCPT' "$T/peerinject.in")|$(echo "$out" | grep -c 'unclosed')"
	done
	stop_pid "$SPID"
}

t_peer_mx() {
	start_dnsd peermx < <(echo "$PEER_ZONE"; many_zone)
	local out rc
	out=$("$SEND" -R "$DNS" -M many.test); rc=$?
	check "40 MX listed worst first: the best 16 (11-26) are kept, sorted" \
		"0|$(seq 11 26 | tr '\n' ' ')|  24 worse MX records not kept: the best 16 are tried" \
		"$rc|$(echo "$out" | sed -n 's/^    \([0-9]*\) mx.*/\1/p' | tr '\n' ' ')|$(echo "$out" | tail -n 1)"
	out=$("$SEND" -R "$DNS" -M huge.test); rc=$?
	check "100 MX over TCP, worst first: the best 16 (101-116) survive the records kept per answer" \
		"0|$(seq 101 116 | tr '\n' ' ')|    101 mx101.huge.test: 127.0.0.24|  84 worse MX records not kept: the best 16 are tried" \
		"$rc|$(echo "$out" | sed -n 's/^    \([0-9]*\) mx.*/\1/p' | tr '\n' ' ')|$(echo "$out" | sed -n 3p)|$(echo "$out" | tail -n 1)"
	out=$("$SEND" -v -R "$DNS" -M mixed.test 2>&1); rc=$?
	check "an MX with odd bytes in its name is skipped, the others stay (and -v says so)" \
		"0|    10 mx11.many.test: 127.0.0.24|1" \
		"$rc|$(echo "$out" | grep '^    ')|$(echo "$out" | grep -c 'skipped a MX record with odd bytes in a name')"
	stop_pid "$DPID"
}

t_peer_8bit() {
	# RFC 6152 3: no 8-bit data to a server that does not offer 8BITMIME
	local out rc
	fake peer8bit no8bit
	out=$(printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nGr\303\274\303\237e\n--b--\n' |
		"$SEND" -S "127.0.0.1:$PORT" -f s@c.test x@p.test 2>&1); rc=$?
	check "8-bit multipart message, no 8BITMIME: 554 5.6.3 (69), no 8-bit byte sent, no DATA" \
		"69|smtp_send: <x@p.test> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"554 5.6.3 8-bit message, server does not offer 8BITMIME\"|0|0" \
		"$rc|$out|$(LC_ALL=C grep -a -c $'[\x80-\xff]' "$T/peer8bit.in")|$(grep -a -c '^DATA' "$T/peer8bit.in")"
	out=$(printf 'Subject: 7\n\nGruesse\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test x@p.test 2>&1); rc=$?
	check "7-bit message to the same server: sent" "0" "$rc"
	: >"$T/peer8bit.in"
	out=$(printf 'Subject: 8\n\nGr\303\274\303\237e\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test x@p.test 2>&1); rc=$?
	check "8-bit single-part text, no 8BITMIME: sent as quoted-printable (issue 10), no 8-bit byte" "0|0|1" \
		"$rc|$(LC_ALL=C grep -a -c $'[\x80-\xff]' "$T/peer8bit.in")|$(grep -a -c '^Gr=C3=BC=C3=9Fe' "$T/peer8bit.in")"
	stop_pid "$SPID"
}

t_peer_data() {
	# a 250 to DATA: nothing was sent, so nothing may count as sent
	local out rc q=$T/peerdata/queue
	fake peerdata data250
	out=$(printf 'Subject: d\n\nbody\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test x@p.test 2>&1); rc=$?
	check "DATA answered 250: deferred (75) as a protocol error" \
		"75|smtp_send: <x@p.test> deferred relay=127.0.0.1[127.0.0.1]:$PORT reply=\"451 4.5.0 protocol error: the server answered DATA with 250, not 354\"" \
		"$rc|$out"
	put_entry "$q" 1795000000.M1P1Q1 'version 1' 'id 1795000000.M1P1Q1' 'sender <s@c.test>' \
		"arrival $(date +%s)" 'attempts 0' 'next 0' 'rcpt <x@p.test>' <<<$'Subject: d\n\nqueued body'
	"$SEND" -q "$q" -S "127.0.0.1:$PORT" 2>"$T/peerdata/run"; rc=$?
	check "queue: DATA answered 250: the entry is kept, not lost" "75|1|attempts 1" \
		"$rc|$(count_files "$q/entries")|$(grep '^attempts' "$q/entries/1795000000.M1P1Q1")"
	stop_pid "$SPID"
	# RFC 5321 4.3.2: RCPT has no 3xx reply; a 354 to it is a server out
	# of step, not a refusal (it failed the recipient: a bounce for good)
	fake peerdata354 rcpt354
	out=$(printf 'Subject: d\n\nbody354\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test r1@p.test r2@p.test 2>&1); rc=$?
	check "RCPT answered 354: both deferred (75) as a protocol error, no message sent" \
		"75|2|0" \
		"$rc|$(echo "$out" | grep -c 'deferred relay=127.0.0.1\[127.0.0.1\]:[0-9]* reply="451 4.5.0 protocol error: the server answered RCPT with 354"')|$(grep -a -c body354 "$T/peerdata354.in")"
	stop_pid "$SPID"
	# MAIL refused, yet the pipelined DATA gets 354 (RFC 2920 3.1 wants
	# 503 or 554): a "." alone ends it, so QUIT is a command, not data
	fake peerdata550 mail550
	out=$(printf 'Subject: d\n\nbody550\n' | "$SEND" -S "127.0.0.1:$PORT" -T 5 -f s@c.test r1@p.test r2@p.test 2>&1); rc=$?
	check "MAIL refused, DATA 354 anyway: failed (69), an empty message ended, then QUIT" \
		"69|2|DATA . QUIT|0" \
		"$rc|$(echo "$out" | grep -c 'failed relay=127.0.0.1\[127.0.0.1\]:[0-9]* reply="550 5.7.1 sender refused"')|$(tr -d '\r' <"$T/peerdata550.in" | tail -n 3 | tr '\n' ' ' | sed 's/ $//')|$(grep -a -c body550 "$T/peerdata550.in")"
	stop_pid "$SPID"
	# MAIL refused, the pipelined RCPTs get 503, and a server counting
	# them as errors closes with 421: the 550 for the sender stands
	fake peerdata550c mail550c
	out=$(printf 'Subject: d\n\nbody\n' | "$SEND" -S "127.0.0.1:$PORT" -T 5 -f s@c.test r1@p.test r2@p.test r3@p.test 2>&1); rc=$?
	check "MAIL refused, then 421 among the RCPT replies: failed with the 550 (69), not deferred" \
		"69|3|0" \
		"$rc|$(echo "$out" | grep -c 'failed relay=127.0.0.1\[127.0.0.1\]:[0-9]* reply="550 5.7.1 sender refused"')|$(echo "$out" | grep -c deferred)"
	stop_pid "$SPID"
}

t_peer_wire() {
	# what the queue holds goes out with CRLF only, lines of 998 at most
	local q=$T/peerwire/queue rc x2500 d1500
	x2500=$(chars x 2500)
	d1500=.$(chars y 1500)
	fake peerwire plain
	printf 'Subject: wire\n\na\rb\nc\r\n%s\n%s\nend\n' "$x2500" "$d1500" |
		put_entry "$q" 1795000001.M1P1Q1 'version 1' 'id 1795000001.M1P1Q1' 'sender <s@c.test>' "arrival $(date +%s)" \
		'attempts 0' 'next 0' 'rcpt <x@p.test>'
	"$SEND" -q "$q" -S "127.0.0.1:$PORT" 2>"$T/peerwire/run"; rc=$?
	{ printf 'Subject: wire\r\n\r\na\r\nb\r\nc\r\n%s\r\n %s\r\n %s\r\n' "$(chars x 998)" "$(chars x 997)" "$(chars x 505)"
	  printf '..%s\r\n %s\r\nend\r\n' "$(chars y 996)" "$(chars y 504)"
	} >"$T/peerwire/want"
	data_of "$T/peerwire.in" >"$T/peerwire/got"
	check "queued bare CR, CRLF, 2500- and 1501-octet lines: CRLF only, broken at 998 with CRLF SP, dots stuffed" \
		"0|same|998" \
		"$rc|$(cmp -s "$T/peerwire/want" "$T/peerwire/got" && echo same || cmp "$T/peerwire/want" "$T/peerwire/got" 2>&1 | head -n 1)|$(tr -d '\r' <"$T/peerwire/got" | awk '{ if (length($0) > m) m = length($0) } END { print m }')"
	stop_pid "$SPID"
}

t_peer_domain() {
	start_dnsd peerdomain <<<"$PEER_ZONE"
	start_smtpd peerdom -a 127.0.0.24 -n mx.example.org -m mail -d example.org
	local P=$PORT mx=$SPID out rc before
	mkdir -p "$T/peerdom/mail/x"
	out=$(printf 'Subject: d\n\nx\n' | "$SEND" -R "$DNS" -P "$P" -T 1 -f s@c.test x@example.org. 2>&1); rc=$?
	check "a trailing dot (x@example.org.): looked up without it, sent" "0|1|smtp_send: <x@example.org> sent" \
		"$rc|$(count_files "$T/peerdom/mail/x/new")|$(echo "$out" | grep -o '^smtp_send: <x@example.org> sent')"
	before=$(wc -l <"$T/peerdomain/dns.log")
	out=$(printf 'Subject: d\n\nx\n' | "$SEND" -R "$DNS" -P "$P" -T 1 -f s@c.test 'x@a..b' 2>&1); rc=$?
	check "x@a..b: 553 5.1.2 at once (68), no DNS query" \
		"68|smtp_send: <x@a..b> failed relay=none reply=\"553 5.1.2 a..b is not a valid domain name\"|$before" \
		"$rc|$out|$(wc -l <"$T/peerdomain/dns.log")"
	out=$(printf 'Subject: d\n\nx\n' | "$SEND" -R "$DNS" -P "$P" -T 1 -f s@c.test "x@$(printf '%70s' '' | tr ' ' a).test" 2>&1); rc=$?
	check "a 70-octet label: 553 5.1.2 at once (68)" "68|1" "$rc|$(echo "$out" | grep -c 'reply="553 5.1.2 ')"
	stop_pid "$mx"
	stop_pid "$DPID"
}

t_peer_limit() {
	# RFC 5321 4.5.3.1.10: 452 too many recipients: the rest in a new transaction
	local out rc
	fake peerlimit limit5
	out=$(printf 'Subject: l\n\nx\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test r1@p.test r2@p.test r3@p.test \
		r4@p.test r5@p.test r6@p.test r7@p.test 2>&1); rc=$?
	check "7 recipients, a limit of 5: all sent in two transactions on one connection" "0|7|2|1|2" \
		"$rc|$(echo "$out" | grep -c '> sent relay=')|$(grep -a -c '^MAIL FROM' "$T/peerlimit.in")|$(grep -c connection "$T/peerlimit.log")|$(grep -a -c '^Subject: l' "$T/peerlimit.in")"
	stop_pid "$SPID"
}

t_peer_421() {
	# RFC 5321 3.8: a 421 ends the use of the connection, whatever it answers
	local out rc
	fake peer421 rcpt421
	out=$(printf 'Subject: c\n\nbody421\n' | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test r1@p.test r2@p.test r3@p.test 2>&1); rc=$?
	check "421 to the second RCPT: all three deferred with it (75), no message sent, no QUIT" \
		"75|3|0|0" \
		"$rc|$(echo "$out" | grep -c 'deferred relay=127.0.0.1\[127.0.0.1\]:[0-9]* reply="421 4.3.2 fake.test closing the connection"')|$(grep -a -c body421 "$T/peer421.in")|$(grep -a -c QUIT "$T/peer421.in")"
	stop_pid "$SPID"
}

t_peer_entry() {
	# entries read as if a stranger wrote them (format in NOTES.md)
	start_dnsd peerentry <<<"$PEER_ZONE"
	start_smtpd peerent -a 127.0.0.24 -n mx.example.org -m mail -d example.org
	local P=$PORT mx=$SPID q=$T/peerentry/queue rc now
	now=$(date +%s)
	mkdir -p "$T/peerent/mail/alice"
	# a renamed copy: its own entry, rewritten under its own name
	put_entry "$q" copy1 'version 1' 'id 1795000000.M1P1Q1' 'sender <s@c.test>' "arrival $now" 'attempts 0' \
		'next 0' 'rcpt <alice@example.org>' 'rcpt <x@later.test>' <<<$'Subject: copy\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 2 2>"$T/peerentry/run1"; rc=$?
	check "a renamed copy (id line says otherwise): the file name is the id" \
		"75|copy1|rcpt <x@later.test>|1" \
		"$rc|$(ls "$q/entries" | tr '\n' ' ' | sed 's/ $//')|$(grep '^rcpt' "$q/entries/copy1")|$(count_files "$T/peerent/mail/alice/new")"
	rm -f "$q/entries/"*
	# an id line that names a path: malformed, left alone, nothing written outside
	put_entry "$q" e2 'version 1' 'id ../../evil' 'sender <s@c.test>' "arrival $now" 'attempts 0' \
		'next 0' 'rcpt <alice@example.org>' 'rcpt <x@later.test>' <<<$'Subject: evil\n\nx'
	cp "$q/entries/e2" "$T/peerentry/e2.orig"
	put_entry "$q" e3 'version 1' 'id e3' "arrival $now" 'rcpt <alice@example.org>' <<<$'Subject: nosender\n\nx'
	put_entry "$q" e4 'version 1' 'id e4' 'sender <s@c.test>' 'rcpt <alice@example.org>' <<<$'Subject: noarrival\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 2 2>"$T/peerentry/run2"; rc=$?
	check "id ../../evil, no sender, no arrival: malformed, left alone, logged; nothing sent" \
		"0|same|e2 e3 e4|1|1|1|broken=3|1|absent" \
		"$rc|$(cmp -s "$q/entries/e2" "$T/peerentry/e2.orig" && echo same)|$(ls "$q/entries" | tr '\n' ' ' | sed 's/ $//')|$(grep -c 'e2: queue: malformed entry (the id line is not a safe queue id), left alone' "$T/peerentry/run2")|$(grep -c 'e3: queue: malformed entry (no sender line), left alone' "$T/peerentry/run2")|$(grep -c 'e4: queue: malformed entry (no arrival line), left alone' "$T/peerentry/run2")|$(grep -o 'broken=[0-9]*' "$T/peerentry/run2")|$(count_files "$T/peerent/mail/alice/new")|$([ -e "$T/peerentry/evil" ] || [ -e "$T/evil" ] && echo present || echo absent)"
	rm -f "$q/entries/"*
	# attempts is a count read like any number: at its largest it stays
	# there (it wrapped to -2147483648, and UBSan stopped the runner);
	# past int, negative or not a number: malformed
	put_entry "$q" e6 'version 2' "arrival $now" 'sender <s@c.test>' 'attempts 2147483647' 'next 0' \
		'rcpt <x@later.test>' <<<$'Subject: many attempts\n\nx'
	put_entry "$q" e7 'version 2' "arrival $now" 'sender <s@c.test>' 'attempts 2147483648' 'next 0' \
		'rcpt <x@later.test>' <<<$'Subject: more\n\nx'
	put_entry "$q" e8 'version 2' "arrival $now" 'sender <s@c.test>' 'attempts -1' 'next 0' \
		'rcpt <x@later.test>' <<<$'Subject: negative\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 2 2>"$T/peerentry/run4"; rc=$?
	check "attempts 2147483647: deferred, still 2147483647, rescheduled; 2147483648 and -1: malformed, left alone" \
		"75|attempts 2147483647|0|yes|1|1|broken=2" \
		"$rc|$(grep '^attempts' "$q/entries/e6")|$(grep -c 'ended abnormally' "$T/peerentry/run4")|$([ "$(sed -n 's/^next //p' "$q/entries/e6")" -gt "$now" ] && echo yes)|$(grep -c 'e7: queue: malformed entry (bad attempts line), left alone' "$T/peerentry/run4")|$(grep -c 'e8: queue: malformed entry (bad attempts line), left alone' "$T/peerentry/run4")|$(grep -o 'broken=[0-9]*' "$T/peerentry/run4")"
	rm -f "$q/entries/"*
	stop_pid "$mx"
	# addresses as smtpd keeps them: between the first '<' and the last '>'
	fake peerentryq plain
	put_entry "$q" e5 'version 1' 'id e5' 'sender <"s>x <y>"@c.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <"a>b <c>@d e\f"@p.test>' <<<$'Subject: quoted\n\nx'
	"$SEND" -q "$q" -S "127.0.0.1:$PORT" 2>"$T/peerentry/run3"; rc=$?
	check "quoted local parts with '<', '>', '@', spaces, backslash: sent byte for byte" \
		'0|MAIL FROM:<"s>x <y>"@c.test>|RCPT TO:<"a>b <c>@d e\f"@p.test>' \
		"$rc|$(grep -a '^MAIL FROM' "$T/peerentryq.in" | sed 's/ SIZE=.*//' | tr -d '\r')|$(grep -a '^RCPT TO' "$T/peerentryq.in" | tr -d '\r')"
	stop_pid "$SPID"
	stop_pid "$DPID"
}

t_peer_bounce() {
	# the bounce: readable, honest, within the line and boundary limits
	start_dnsd peerbounce <<<"$PEER_ZONE"
	start_smtpd peerhome -a 127.0.0.26 -n mx.home.test -m mail -d home.test
	local P=$PORT home=$SPID far expired q=$T/peerbounce/queue rc b longname now
	mkdir -p "$T/peerhome/mail/sender"
	start_server "$T/peerbounce/far.log" "$TOP/tests/fakesmtp" -a 127.0.0.25 -p "$P" rcptlong
	far=$SPID
	start_server "$T/peerbounce/exp.log" "$TOP/tests/fakesmtp" -a 127.0.0.27 -p "$P" rcpt451
	expired=$SPID
	now=$(date +%s)
	# a 124-character name (in labels of at most 63 octets: smtpd takes
	# no longer label in EHLO, RFC 1035 2.3.4)
	longname=$(printf '%57s' '' | tr ' ' h).$(printf '%56s' '' | tr ' ' h).home.test
	put_entry "$q" b1 'version 1' 'id b1' 'sender <sender@home.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <x@far.test>' <<<$'Subject: refused\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -H "$longname" -T 3 2>"$T/peerbounce/run1"; rc=$?
	b=$(only_file "$T/peerhome/mail/sender/new")
	check "bounce: '(host ...)' closed; 'permanent error'; only the header returned, and it says so" \
		"0|1|1|1|0" \
		"$rc|$(grep -c "(host mx.far.test\[127.0.0.25\]:$P)\$" "$b")|$(grep -c '^<x@far.test>: permanent error: 550 5.1.1' "$b")|$(grep -c 'its body is not$' "$b")|$(grep -c 'is returned to you' "$b")"
	check "bounce: no line over 998 octets (a 1,020-octet reply), boundary at most 70 characters" \
		"998 or less|yes" \
		"$(awk '{ if (length($0) > 998) bad = 1 } END { print bad ? "longer" : "998 or less" }' "$b")|$(b=$(sed -n 's/.*boundary="\([^"]*\)".*/\1/p' "$b"); [ -n "$b" ] && [ ${#b} -le 70 ] && echo yes)"
	check "bounce: Diagnostic-Code folded at a space, then the 1,010-octet word cut at 998" \
		"Diagnostic-Code: smtp; 550 5.1.1|998 14" \
		"$(grep '^Diagnostic-Code' "$b")|$(grep -A2 '^Diagnostic-Code' "$b" | sed 1d | awk '/^\t/ { printf "%s%d", n++ ? " " : "", length($0) }')"
	rm -f "$T"/peerhome/mail/sender/new/*
	# expired after the last attempt got a 451: our words in the readable
	# part, the server's in Diagnostic-Code
	put_entry "$q" b2 'version 1' 'id b2' 'sender <sender@home.test>' "arrival $((now - 10))" 'attempts 3' 'next 0' \
		'rcpt <x@expired.test>' <<<$'Subject: expired\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -e 5 -T 3 2>"$T/peerbounce/run2"; rc=$?
	b=$(only_file "$T/peerhome/mail/sender/new")
	check "expired: no 'permanent error', our reason in the text, Diagnostic-Code the server's 451 alone" \
		"0|0|1|Diagnostic-Code: smtp; 451 4.3.0 try again later" \
		"$rc|$(grep -c 'permanent error' "$b")|$(grep -c '^<x@expired.test>: not delivered within 5 s' "$b")|$(grep '^Diagnostic-Code' "$b")"
	rm -f "$T"/peerhome/mail/sender/new/*
	# a message that is all header with no line end after it (found by
	# fuzz_queue_entry): the header returned is the message, and not one
	# byte more (header_length counted a line end that was not there, and
	# the bounce carried the NUL after the text: smtpd refused it)
	printf 'Subject: no line end' | put_entry "$q" b3 'version 1' 'id b3' 'sender <sender@home.test>' \
		"arrival $now" 'attempts 0' 'next 0' 'rcpt <x@far.test>'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 3 2>"$T/peerbounce/run3"; rc=$?
	b=$(only_file "$T/peerhome/mail/sender/new")
	check "a header without a line end: the bounce returns it whole, no NUL, and is stored" \
		"0|1|Subject: no line end|0" \
		"$rc|$(count_files "$T/peerhome/mail/sender/new")|$(sed -n '/^Content-Type: text\/rfc822-headers/,/^--/p' "$b" | grep '^Subject')|$(tr -cd '\000' <"$b" | wc -c | tr -d ' ')"
	rm -f "$T"/peerhome/mail/sender/new/*
	# an arrival no calendar holds: localtime_r() fails, and the bounce's
	# Arrival-Date was made from a struct tm it never filled (valgrind:
	# uninitialised bytes written); now the optional field is left out
	local vg=()
	if [ -z "${SANITIZED:-}" ] && command -v valgrind >/dev/null; then
		vg=(valgrind -q --trace-children=yes --error-exitcode=99 --log-file="$T/peerbounce/vg.%p")
	fi
	put_entry "$q" b4 'version 2' 'sender <sender@home.test>' 'arrival 99999999999999999' 'attempts 0' 'next 0' \
		'rcpt <x@far.test>' <<<$'Subject: far future\n\nx'
	"${vg[@]}" "$SEND" -q "$q" -R "$DNS" -P "$P" -T 3 2>"$T/peerbounce/run4"; rc=$?
	b=$(only_file "$T/peerhome/mail/sender/new")
	check "arrival 99999999999999999: bounced, no Arrival-Date, the rest of the report there${vg:+, valgrind clean}" \
		"0|0|1|" \
		"$rc|$(grep -c '^Arrival-Date' "$b")|$(grep -c '^Final-Recipient: rfc822; x@far.test' "$b")|$(cat "$T"/peerbounce/vg.* 2>/dev/null | head -n 20)"
	stop_pid "$far"
	stop_pid "$expired"
	stop_pid "$home"
	stop_pid "$DPID"
}

t_peer_small() {
	start_dnsd peersmall <<<"$PEER_ZONE"
	local out rc q=$T/peersmall/queue
	out=$("$SEND" -R "$DNS" -T 2 -M nil.test 2>&1); rc=$?
	check "a TCP answer of length 0: said so, not 'timeout' (75)" \
		"  DNS lookup of nil.test MX failed: $DNS: empty answer over TCP|75" "$(echo "$out" | sed -n 2p)|$rc"
	if can_strace; then
		traced "$T/peersmall/strace" "$SEND" -R "$DNS" -M big.test >/dev/null
		check "the TCP DNS query goes out in one write, length and query together (RFC 7766 8)" "1" \
			"$(socket_writes "$T/peersmall/strace" | wc -l | tr -d ' ')"
	else
		skip "TCP DNS query in one write: strace cannot run here"
	fi
	fake peersmall plain
	out=$(printf 'Subject: l\n\nx\n' | "$SEND" -P "$PORT" -f s@c.test 'x@[127.0.0.1x' 2>&1); rc=$?
	check "x@[127.0.0.1x (no ']'): not an address literal, 68, nothing sent" "68|0" \
		"$rc|$(grep -c connection "$T/peersmall.log")"
	out=$(printf 'Subject: l\n\nx\n' | "$SEND" -v -S "127.0.0.1:$PORT" -f s@c.test x@p.test 2>&1)
	check "-v names a smarthost as such" "smtp_send: trying 127.0.0.1 (smarthost)" "$(echo "$out" | grep 'trying')"
	stop_pid "$SPID"
	mkdir -p "$q/entries" "$q/tmp"
	touch -d '40 hours ago' "$q/tmp/old"
	touch "$q/tmp/new"
	"$SEND" -q "$q" -R "$DNS" 2>"$T/peersmall/run"
	check "a queue run removes tmp/ files older than 36 hours, keeps newer ones" "new|1" \
		"$(ls "$q/tmp" | tr '\n' ' ' | sed 's/ $//')|$(grep -c 'removed tmp/old' "$T/peersmall/run")"
	out=$(printf '' | "$SEND" -S 127.0.0.1:9 2>&1); rc=$?
	check "no recipients and empty input: 64 (usage), not 65" "64" "$rc"
	out=$("$SEND" -h 2>/dev/null); rc=$?
	check "-h: the options with their meaning on stdout, exit 0" "0|usage: smtp_send|1|1|1" \
		"$rc|$(echo "$out" | head -n 1 | cut -c1-16)|$(echo "$out" | grep -c '^  -j jobs ')|$(echo "$out" | grep -c '^  -H name ')|$(echo "$out" | grep -c '^  -h ')"
	# smtpd -h too: every option letter smtpd takes has its line
	out=$("$TOP/smtpd" -h 2>/dev/null); rc=$?
	local letters missing=""
	letters=$(sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' "$TOP/smtpd.c" | tr -d ':' | fold -w1)
	for l in $letters; do echo "$out" | grep -q "^  -$l " || missing="$missing -$l"; done
	check "smtpd -h: usage and one line per option on stdout, exit 0" "0|usage: smtpd|$(echo "$letters" | wc -l | tr -d ' ')|" \
		"$rc|$(echo "$out" | head -n 1 | cut -c1-12)|$(echo "$out" | grep -c '^  -[a-zA-Z] ')|$missing"
	stop_pid "$DPID"
}

t_peer_nagle() {
	# issue 13: every group that waits for a reply goes out in one write()
	if ! can_strace; then
		skip "one write per group: strace cannot run here"
		return
	fi
	local d=$T/peernagle
	mkdir -p "$d"
	fake peernagle plain
	printf 'Subject: n\n\n%s\n.dot\n' "$(chars m 4000)" |
		traced "$d/strace" "$SEND" -S "127.0.0.1:$PORT" -f s@c.test a@p.test b@p.test 2>/dev/null
	# the socket's writes, their first 10 octets and how each ends:
	# EHLO; MAIL+RCPT+RCPT+DATA; the message with its "."; QUIT
	socket_writes "$d/strace" |
		awk '{ print length($0) <= 24 ? $0 : substr($0, 1, 10) " ... " substr($0, length($0) - 11) }' >"$d/writes"
	check "one write each: EHLO, the pipelined group, the message with its end, QUIT" \
		'EHLO vm\r\n
MAIL FROM: ... \r\nDATA\r\n
Subject: n ... dot\r\n.\r\n
QUIT\r\n' "$(sed "s/$(hostname)/vm/g" "$d/writes")"
	stop_pid "$SPID"
}

t_peer_jobs() {
	# issue 13: -j N, the property: each message exactly once, the queue
	# empty, no entry worked on twice, log lines whole
	local d=$T/peerjobs rc i a b
	mkdir -p "$d"
	for i in 0 33 x; do "$SEND" -q "$d" -j "$i" 2>/dev/null; echo "$?"; done >"$d/bad.rc"
	check "-j 0, -j 33, -j x: usage (64)" "64 64 64" "$(tr '\n' ' ' <"$d/bad.rc" | sed 's/ $//')"
	start_smtpd peersink -a 127.0.0.1 -n sink.test -m mail -d sink.test -d sub.test
	local sink=$SPID sinkport=$PORT
	mkdir -p "$T/peersink/mail/x" "$T/peersink/mail/sender"
	start_smtpd peersub -a 127.0.0.1 -n sub.test -m mail -q queue -d sub.test
	local sub=$SPID
	mkdir -p "$T/peersub/mail/sender"
	{ echo 'EHLO c'
	  for ((i = 1; i <= 50; i++)); do
		printf 'MAIL FROM:<sender@sub.test>\nRCPT TO:<x@sink.test>\n'
		[ "$i" = 25 ] && echo 'RCPT TO:<nobody@sink.test>'
		printf 'DATA\nMessage-ID: <j%d@sub.test>\nSubject: job %d\n\nbody %d\n.\n' "$i" "$i" "$i"
	  done
	  echo QUIT; } | smtp "$PORT" -l -T 30 >/dev/null
	check "50 messages queued" "50" "$(count_files "$T/peersub/queue/entries")"
	# two runners at once, 4 processes each: the locks keep them apart
	"$SEND" -v -q "$T/peersub/queue" -F -j 4 -S "127.0.0.1:$sinkport" -T 20 2>"$d/runA" & a=$!
	PIDS+=("$a")
	"$SEND" -v -q "$T/peersub/queue" -F -j 4 -S "127.0.0.1:$sinkport" -T 20 2>"$d/runB"; rc=$?
	wait "$a"
	# the bounce for nobody@ is queued and sent to sender@sub.test by one of them
	for ((i = 0; i < 3 && $(count_files "$T/peersub/queue/entries") > 0; i++)); do
		"$SEND" -q "$T/peersub/queue" -F -j 4 -S "127.0.0.1:$sinkport" -T 20 2>>"$d/runC"
	done
	check "-j 4, two runners: each of the 50 sent exactly once, the queue empty" "50|50|0" \
		"$(count_files "$T/peersink/mail/x/new")|$(cat "$T"/peersink/mail/x/new/* | grep '^Message-ID: <j' | sort -u | wc -l | tr -d ' ')|$(count_files "$T/peersub/queue/entries")"
	check "no entry worked on twice: each id has one from= line in both logs" "51|0" \
		"$(cat "$d/runA" "$d/runB" | grep -c ': queue: from=')|$(cat "$d/runA" "$d/runB" | sed -n 's/^smtp_send: \([^ ]*\): queue: from=.*/\1/p' | sort | uniq -d | wc -l | tr -d ' ')"
	check "-v lines: each whole, each of a delivery process starts with its entry's id" "0|0" \
		"$(cat "$d/runA" "$d/runB" | grep -vc '^smtp_send: ')|$(cat "$d/runA" "$d/runB" | grep -v 'queue: run done' | grep -vc '^smtp_send: [0-9][0-9.MPQ]*: ')"
	check "the bounce for the refused recipient came home" "1" \
		"$(grep -l '^Final-Recipient: rfc822; nobody@sink.test' "$T"/peersink/mail/sender/new/* 2>/dev/null | wc -l | tr -d ' ')"
	stop_pid "$sub"
	stop_pid "$sink"
}

# RFC 1870 7: a message over the server's "SIZE n" is not sent at all.
# The header is whole (From:, Date:, Message-ID:), so smtp_send adds
# nothing and the size is what the test wrote: 1000 octets with CRLF.
t_peer_size() {
	start_smtpd peersize -m mail -s 1000 -v
	local d=$T/peersize out rc n
	mkdir -p "$d/mail/alice"
	sized() {       # a message of $1 octets, CRLF counted
		local head='From: s@c.test\nDate: Sat, 28 Nov 2026 12:00:00 +0000\nMessage-ID: <1@c.test>\nSubject: s\n\n'
		printf "$head"
		head -c $(($1 - $(printf "$head" | wc -c) - $(printf "$head" | wc -l) - 2)) /dev/zero | tr '\0' a
		printf '\n'
	}
	out=$(sized 1000 | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test alice@localhost 2>&1); rc=$?
	check "a message of 1000 octets to SIZE 1000: sent, stored as 1000 octets" "0|1|1000" \
		"$rc|$(count_files "$d/mail/alice/new")|$(sed -n '/^From: s@c.test$/,$p' "$(only_file "$d/mail/alice/new")" | sed 's/$/\r/' | wc -c | tr -d ' ')"
	out=$(sized 1001 | "$SEND" -S "127.0.0.1:$PORT" -f s@c.test alice@localhost 2>&1); rc=$?
	n=$(grep -c 'C: MAIL' "$d/log")
	check "1001 octets: failed (69) with 552 5.3.4 at once, no MAIL sent" \
		"69|smtp_send: <alice@localhost> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"552 5.3.4 message size 1001 exceeds the server's limit of 1000 (SIZE)\"|1|1" \
		"$rc|$out|$n|$(count_files "$d/mail/alice/new")"
	stop_pid "$SPID"
}

# shellcheck shell=bash
# tests/groups/graders.sh, sourced by test.sh
# The graders of NOTES.md Part 7's extension assignments.  Each is skipped,
# with the reason printed, until the student's programs have the extension
# (the EHLO reply advertises it, or the option that switches it on is
# accepted); then it checks what the assignment's "Graded by" says.
# Groups: starttls greylist spf chunking conncache ipv6
TEST_GROUPS+=(starttls greylist spf chunking conncache ipv6)

# try_smtpd DIR [options]: start_smtpd, quietly; PORT is empty if smtpd
# refused the options (a server that does not start is no failure here).
try_smtpd() { SERVER_MAY_FAIL=1 start_smtpd "$@" 2>/dev/null; }

# The message files of a Maildir, each with our trace lines removed.
bodies() {
	local f
	for f in "$1"/new/*; do
		[ -e "$f" ] || continue
		strip_received "$f" | grep -v -e '^Return-Path:' -e '^Delivered-To:'
	done
}

# Does smtp_send take option $1?  (64 and "invalid option" when it does not.)
send_takes() {
	local out
	out=$("$TOP/smtp_send" "$1" -M invalid. -R 127.0.0.1:9 -T 1 2>&1)
	! echo "$out" | grep -q 'invalid option'
}

# make_queue DIR N [SENDER]: N messages from SENDER (alice@src.test) to
# bob@example.net, queued by an smtpd in $T/DIR (started once, relaying
# for loopback).  Sets QDIR.
declare -A QPORT
make_queue() {
	local dir=$1 n=$2 i
	if [ -z "${QPORT[$dir]:-}" ]; then
		start_smtpd "$dir" -d src.test
		QPORT[$dir]=$PORT
	fi
	for ((i = 1; i <= n; i++)); do
		printf 'HELO src.test\nMAIL FROM:<%s>\nRCPT TO:<bob@example.net>\nDATA\nSubject: message %d\n\nbody %d\n.\nQUIT\n' \
			"${3:-alice@src.test}" "$i" "$i" | smtp "${QPORT[$dir]}" >/dev/null
	done
	QDIR=$T/$dir/queue
}

# ---- 1. STARTTLS (RFC 3207) -------------------------------------------------

t_starttls() {
	local dir=$T/tls out ehlo
	command -v openssl >/dev/null || { skip "starttls grader: openssl is not installed"; return; }
	mkdir -p "$dir/mail/bob"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.test \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
	try_smtpd tls -d example.net -S "$dir/cert.pem" -K "$dir/key.pem"
	[ -n "$PORT" ] || { skip "starttls grader (Part 7, 1): smtpd does not take -S cert -K key yet"; return; }
	ehlo=$(printf 'EHLO c.test\nQUIT\n' | smtp "$PORT" | tr -d '\r')
	echo "$ehlo" | grep -q '^250[- ]STARTTLS$' ||
		{ skip "starttls grader (Part 7, 1): smtpd does not advertise STARTTLS"; return; }

	out=$(printf 'MAIL FROM:<a@c.test>\nEHLO c.test\nMAIL FROM:<a@c.test>\nRCPT TO:<bob@example.net>\nDATA\nSubject: over TLS\n\nsecret\n.\nQUIT\n' |
		timeout 20 openssl s_client -starttls smtp -connect "127.0.0.1:$PORT" -crlf -quiet -ign_eof 2>"$dir/s_client.err" |
		tr -d '\r')
	check "starttls: openssl s_client -starttls smtp completes; after TLS a command before EHLO gets 503, then a whole transaction" \
		"503 250 250 250 354 250 221" "$(echo "$out" | grep -E '^[0-9]{3} ' | cut -c1-3 | tr '\n' ' ' | sed 's/ $//')"
	check "starttls: the EHLO reply inside TLS does not offer STARTTLS again (RFC 3207 4.2)" "0" \
		"$(echo "$out" | grep -c 'STARTTLS')"
	check "starttls: the message sent over TLS is stored" "1|secret" \
		"$(count_files "$dir/mail/bob/new")|$(bodies "$dir/mail/bob" | grep secret)"
	out=$(printf 'EHLO c.test\nMAIL FROM:<a@c.test>\nRCPT TO:<bob@example.net>\nDATA\nSubject: plain\n\nplain\n.\nQUIT\n' |
		smtp "$PORT" | codes | grep -v -- - | tr '\n' ' ')
	check "starttls: a plain session still works" "220 250 250 250 354 250 221 |2" \
		"$out|$(count_files "$dir/mail/bob/new")"
}

# ---- 2. Greylisting ------------------------------------------------------------

t_greylist() {
	local gport gpid out rc i
	mkdir -p "$T/grey/mail/bob"
	try_smtpd grey -d example.net -g 3
	[ -n "$PORT" ] || { skip "greylist grader (Part 7, 2): smtpd does not take -g seconds yet"; return; }
	gport=$PORT gpid=$SPID
	start_dnsd greydns <<'EOF'
example.net      MX 10 mx.example.net
mx.example.net   A  127.0.0.1
EOF
	make_queue greysrc 1
	deliver_grey() { "$TOP/smtp_send" -q "$QDIR" -F -R "$DNS" -P "$gport" -H src.test -T 10 >"$T/grey.out" 2>&1; }
	deliver_grey; rc=$?
	check "greylist: the first queue run is deferred with 451 4.7.1" "75|1" \
		"$rc|$(grep -c 'deferred .*reply="451 4.7.1' "$T/grey.out")"
	deliver_grey; rc=$?
	check "greylist: a -F run at once, before the delay, is still deferred" "75|0" \
		"$rc|$(count_files "$T/grey/mail/bob/new")"
	poll 300 deliver_grey
	check "greylist: a later -F run delivers" "1|0" \
		"$(count_files "$T/grey/mail/bob/new")|$(count_files "$QDIR/entries")"
	check_true "greylist: the triplets are kept in the file greylist" test -s "$T/grey/greylist"

	stop_pid "$gpid"
	start_smtpd grey -d example.net -g 3 -p "$gport"
	make_queue greysrc 1
	deliver_grey; rc=$?
	check "greylist: after a restart the known triplet is accepted at once (the file)" "0|2" \
		"$rc|$(count_files "$T/grey/mail/bob/new")"
	make_queue greysrc 1 carol@src.test
	deliver_grey; rc=$?
	check "greylist: a new sender is a new triplet: deferred" "75|2" \
		"$rc|$(count_files "$T/grey/mail/bob/new")"
}

# ---- 3. SPF (RFC 7208) ----------------------------------------------------------

t_spf() {
	local d out
	start_dnsd spfdns <<'EOF'
pass.test     TXT "v=spf1 ip4:127.0.0.0/8 -all"
fail.test     TXT "v=spf1 ip4:192.0.2.0/24 -all"
a.test        TXT "v=spf1 a -all"
a.test        A   127.0.0.1
mx.test       TXT "v=spf1 mx -all"
mx.test       MX  10 mail.mx.test
mail.mx.test  A   127.0.0.1
none.test     A   127.0.0.1
EOF
	if grep -q 'bad line' "$T/spfdns/dns.log"; then
		skip "spf grader (Part 7, 3): tests/dnsd serves no TXT records yet"; return
	fi
	mkdir -p "$T/spf/mail/bob"
	try_smtpd spf -d example.net -R "$DNS"
	[ -n "$PORT" ] || { skip "spf grader (Part 7, 3): smtpd does not take -R nameserver yet"; return; }
	out=
	for d in pass fail a mx none; do
		out="$out$d:$(printf 'HELO c.test\nMAIL FROM:<x@%s.test>\nRCPT TO:<bob@example.net>\nDATA\nSubject: %s\n\nx\n.\nQUIT\n' "$d" "$d" |
			smtp "$PORT" | tr -d '\r' | sed -n '3p' | cut -d' ' -f1-2) "
	done
	check "spf: MAIL FROM is accepted for pass (ip4:, a, mx) and none, refused 550 5.7.23 for fail (RFC 7208 8.4; the code: RFC 7372)" \
		"pass:250 2.1.0 fail:550 5.7.23 a:250 2.1.0 mx:250 2.1.0 none:250 2.1.0 " "$out"
	out=$(for f in "$T/spf/mail/bob/new"/*; do
		printf '%s=%s\n' "$(sed -n 's/^Subject: //p' "$f")" "$(sed -n 's/^Received-SPF: \([a-z]*\).*/\1/p' "$f")"; done | sort | tr '\n' ' ')
	check "spf: each stored message says Received-SPF: pass or none" "a=pass mx=pass none=none pass=pass " "$out"
}

# ---- 4. CHUNKING / BDAT (RFC 3030) ----------------------------------------------

t_chunking() {
	local c1 c2 c3 out
	mkdir -p "$T/bdat/mail/bob"
	start_smtpd bdat -d example.net
	printf 'EHLO c.test\nQUIT\n' | smtp "$PORT" | tr -d '\r' | grep -q '^250[- ]CHUNKING$' ||
		{ skip "chunking grader (Part 7, 4): smtpd does not advertise CHUNKING"; return; }
	c1=$'Subject: chunks\r\n\r\nline one\r\n'
	c2=$'.\r\n..x\r\nmid'
	c3=$'dle end\r\n'
	out=$({ printf 'EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<bob@example.net>\r\n'
		printf 'BDAT %d\r\n%s' "${#c1}" "$c1"
		printf 'BDAT %d\r\n%s' "${#c2}" "$c2"
		printf 'BDAT %d LAST\r\n%s' "${#c3}" "$c3"
		printf 'MAIL FROM:<a@c.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\nSubject: data\r\n\r\nstill works\r\n.\r\nQUIT\r\n'
	} | "$CHAT" 127.0.0.1 "$PORT" | codes | grep -v -- - | tr '\n' ' ')
	check "chunking: three BDAT chunks get 250 each, then DATA still works" \
		"220 250 250 250 250 250 250 250 250 354 250 221 " "$out"
	check "chunking: the stored message is the bytes sent, no dot removed (a line \".\" and \"..x\" inside)" \
		"Subject: chunks

line one
.
..x
middle end" "$(bodies "$T/bdat/mail/bob" | sed -n '/^Subject: chunks/,/^middle end/p')"
}

# ---- 5. A connection cache in smtp_send ----------------------------------------

t_conncache() {
	local out
	send_takes -k || { skip "conncache grader (Part 7, 5): smtp_send does not take -k yet"; return; }
	mkdir -p "$T/cache/mail/bob"
	start_smtpd cache -d example.net -v
	local cport=$PORT
	start_dnsd cachedns <<'EOF'
example.net      MX 10 mx.example.net
mx.example.net   A  127.0.0.1
EOF
	make_queue cachesrc 3
	"$TOP/smtp_send" -k -q "$QDIR" -R "$DNS" -P "$cport" -H src.test -T 10 >"$T/cache.out" 2>&1
	check "conncache: a queue run of three entries to one domain makes one connection" "1" \
		"$(grep -c ' connect client=' "$T/cache/log")"
	check "conncache: all three are delivered and the queue is empty" "3|0" \
		"$(count_files "$T/cache/mail/bob/new")|$(count_files "$QDIR/entries")"
	check_true "conncache: RSET between the transactions" \
		test "$(grep -c 'C: RSET' "$T/cache/log")" -ge 2
}

# ---- 6. IPv6 first -----------------------------------------------------------------

t_ipv6() {
	local out v6port v4port
	send_takes -6 || { skip "ipv6 grader (Part 7, 6): smtp_send does not take -6 yet"; return; }
	mkdir -p "$T/v6/mail/bob" "$T/v4/mail/bob"
	try_smtpd v6 -a ::1 -d v6.test
	[ -n "$PORT" ] || { skip "ipv6 grader (Part 7, 6): no IPv6 loopback (::1) here"; return; }
	v6port=$PORT
	start_smtpd v4 -a 127.0.0.1 -p "$v6port" -d v6.test
	v4port=$PORT
	start_dnsd v6dns <<'EOF'
v6.test      MX   10 mx.v6.test
mx.v6.test   A    127.0.0.1
mx.v6.test   AAAA ::1
EOF
	out=$("$TOP/smtp_send" -6 -R "$DNS" -M v6.test | grep 'mx.v6.test:')
	check "ipv6: -M -6 lists the AAAA address before the A address" "    10 mx.v6.test: ::1, 127.0.0.1" "$out"
	printf 'Subject: six\n\nx\n' | "$TOP/smtp_send" -6 -R "$DNS" -P "$v6port" -H c.test -f a@c.test -T 10 bob@v6.test 2>/dev/null
	check "ipv6: with -6 the message goes over ::1" "1|0|1" \
		"$(count_files "$T/v6/mail/bob/new")|$(count_files "$T/v4/mail/bob/new")|$(grep -c 'connect client=::1' "$T/v6/log")"
	printf 'Subject: four\n\nx\n' | "$TOP/smtp_send" -R "$DNS" -P "$v4port" -H c.test -f a@c.test -T 10 bob@v6.test 2>/dev/null
	check "ipv6: without -6 the A address comes first, as before" "1|1" \
		"$(count_files "$T/v6/mail/bob/new")|$(count_files "$T/v4/mail/bob/new")"
	check_true "ipv6: lab/zone gives the lab's hosts ::1 addresses (AAAA)" grep -q '^[a-z0-9.]* *AAAA *::1' "$TOP/lab/zone"
}

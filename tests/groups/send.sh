# shellcheck shell=bash
# tests/groups/send.sh, sourced by test.sh
# smtp_send: routing, sending, the queue, hostile servers
# Groups: route send queue hostile
TEST_GROUPS+=(route send queue hostile)

# ---- tests: smtp_send -------------------------------------------------------------

ZONE='# the zone of the loopback mini-internet
example.org      MX    10 mx1.example.org
example.org      MX    20 mx2.example.org
mx1.example.org  A     127.0.0.2
mx2.example.org  A     127.0.0.3
example.net      MX    10 mx.example.net
mx.example.net   A     127.0.0.4
example.com      MX    10 mail.example.com
mail.example.com A     127.0.0.8
alias.org        CNAME www.alias.org
www.alias.org    CNAME example.org
loop.org         CNAME loop2.org
loop2.org        CNAME loop.org
implicit.org     A     127.0.0.3
nomail.org       MX    0 .
broken.org       SERVFAIL
big.org          TRUNCATE
big.org          MX    5 mx2.example.org
bad1.org         MALFORMED ptrloop
bad2.org         MALFORMED counts
bad3.org         MALFORMED cutoff
fallback.org     MX    10 dead.fallback.org
fallback.org     MX    20 mx2.example.org
dead.fallback.org A    127.0.0.5
busy.org         MX    10 busy.busy.org
busy.org         MX    20 mx2.example.org
busy.busy.org    A     127.0.0.6
later.org        MX    10 mx.later.org
mx.later.org     A     127.0.0.7
same.org         MX    10 a.same.org
same.org         MX    10 b.same.org
a.same.org       A     127.0.0.2
b.same.org       A     127.0.0.3
spoof.org        WRONGID
side.org         WRONGPORT
stall.org        MX    10 mx.stall.org
mx.stall.org     A     127.0.0.9
tempfail.org     MX    10 mx.tempfail.org
mx.tempfail.org  A     127.0.0.10
'

SEND=$TOP/smtp_send

t_route() {
	start_dnsd route <<<"$ZONE"
	local out rc d i
	out=$("$SEND" -R "$DNS" -M alias.org); rc=$?
	check "-M: CNAME chain, MX by preference, addresses" "route to alias.org
  alias.org is an alias (CNAME) for www.alias.org
  www.alias.org is an alias (CNAME) for example.org
  MX records of example.org, best first:
    10 mx1.example.org: 127.0.0.2
    20 mx2.example.org: 127.0.0.3|0" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M implicit.org); rc=$?
	check "-M: implicit MX" "route to implicit.org
  implicit.org has no MX records: the domain itself is the mail exchanger (implicit MX, RFC 5321 5.1)
    0 implicit.org: 127.0.0.3|0" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M nomail.org); rc=$?
	check "-M: null MX is a permanent failure (69)" "route to nomail.org
  domain nomail.org accepts no mail (null MX, RFC 7505)
  -> permanent failure (5.1.10)|69" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M nosuch.org); rc=$?
	check "-M: NXDOMAIN is permanent (68)" "route to nosuch.org
  domain nosuch.org does not exist (NXDOMAIN)
  -> permanent failure (5.1.2)|68" "$out|$rc"
	out=$("$SEND" -R "$DNS" -T 2 -M broken.org); rc=$?
	check "-M: SERVFAIL is temporary (75)" "route to broken.org
  DNS lookup of broken.org MX failed: server answered rcode 2 (SERVFAIL)
  -> temporary failure: try later|75" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M loop.org); rc=$?
	check "-M: a CNAME loop is detected (75)" "route to loop.org
  loop.org is an alias (CNAME) for loop2.org
  DNS lookup of loop.org MX failed: CNAME loop at loop2.org -> loop.org
  -> temporary failure: try later|75" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M big.org); rc=$?
	check "-M: a truncated UDP answer is asked again over TCP" "route to big.org
  MX records of big.org, best first:
    5 mx2.example.org: 127.0.0.3|0|1" "$out|$rc|$(grep -c 'query big.org 15 tcp' "$T/route/dns.log")"
	for d in bad1 bad2 bad3; do
		out=$("$SEND" -R "$DNS" -T 2 -M $d.org); rc=$?
		echo "$out" | sed -n 2p >>"$T/route/malformed"
		echo "$rc" >>"$T/route/malformed.rc"
	done
	check "malformed answers (pointer loop, lying count, cut-off record): temporary failure, no crash" \
"  DNS lookup of bad1.org MX failed: malformed answer: bad MX record
  DNS lookup of bad2.org MX failed: malformed answer: a record is cut off or has a bad name
  DNS lookup of bad3.org MX failed: malformed answer: a record is longer than the message|75 75 75" \
		"$(cat "$T/route/malformed")|$(tr '\n' ' ' <"$T/route/malformed.rc" | sed 's/ $//')"
	# equal preferences in random order: 40 looks see both orders
	for ((i = 0; i < 40; i++)); do "$SEND" -R "$DNS" -M same.org | sed -n 3p; done | sort | uniq -c >"$T/route/same"
	check "MX records of equal preference are shuffled" "2" "$(wc -l <"$T/route/same" | tr -d ' ')"
	out=$("$SEND" -R "$DNS" -T 1 -M spoof.org 2>&1); rc=$?
	check "an answer with the wrong id is ignored (then: timeout, 75)" "  DNS lookup of spoof.org MX failed: $DNS: no answer (timeout)|75" \
		"$(echo "$out" | sed -n 2p)|$rc"
	out=$("$SEND" -R "$DNS" -T 1 -M side.org 2>&1); rc=$?
	check "an answer from the wrong port never arrives (then: timeout, 75)" "  DNS lookup of side.org MX failed: $DNS: no answer (timeout)|75|2" \
		"$(echo "$out" | sed -n 2p)|$rc|$(grep -c 'query side.org 15 udp' "$T/route/dns.log")"
	# a second server is asked when the first does not answer
	start_server "$T/route/silent.log" "$TOP/tests/dnsd" -a 127.0.0.1 -p 0 <(printf 'example.org DROP\nmx1.example.org DROP\nmx2.example.org DROP\n')
	local silent=127.0.0.1:$PORT silent_pid=$SPID
	out=$("$SEND" -R "$silent" -R "$DNS" -T 1 -M example.org | tail -n 1); rc=$?
	check "retry across servers: the silent one, then the next" "    20 mx2.example.org: 127.0.0.3|0|1" \
		"$out|$rc|$(grep -c 'query example.org 15 udp.*dropped' "$T/route/silent.log")"
	stop_pid "$silent_pid"
	out=$("$SEND" -R "$DNS" -P 2525 -M '[127.0.0.9]'); rc=$?
	check "-M: an address literal needs no DNS" "route to [127.0.0.9]
  address literal: no DNS lookup
    0 [127.0.0.9]: 127.0.0.9|0" "$out|$rc"
	stop_pid "$DPID"
}

# The mini-internet for the send and queue tests: DNS, and smtpd as the
# MX hosts of example.org (127.0.0.2 and .3) and example.net (.4), all on
# one port P, as real MX hosts share port 25.
start_internet() {
	rm -rf "$T/mx1" "$T/mx2" "$T/mxnet"
	start_dnsd "$1" <<<"$ZONE"
	start_smtpd mx1 -a 127.0.0.2 -m mail -d example.org -d alias.org -d big.org
	P=$PORT; MX1=$SPID
	mkdir -p "$T/mx1/mail/alice" "$T/mx1/mail/bob"
	start_smtpd mx2 -a 127.0.0.3 -p "$P" -m mail -d example.org -d fallback.org -d busy.org -d implicit.org
	MX2=$SPID
	mkdir -p "$T/mx2/mail/alice"
	start_smtpd mxnet -a 127.0.0.4 -p "$P" -m mail -d example.net
	MXNET=$SPID
	mkdir -p "$T/mxnet/mail/carol" "$T/mxnet/mail/dave" "$T/mxnet/mail/erin"
}
stop_internet() {
	stop_pid "$MX1"; stop_pid "$MX2"; stop_pid "$MXNET"; stop_pid "$DPID"
}

t_send() {
	start_internet send
	local d=$T/send out rc f
	printf 'From: Sender <sender@example.com>\r\nTo: alice@example.org, carol@example.net\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <rt@example.com>\r\nSubject: round trip\r\n\r\n.\r\n..\r\n...x\r\n.leading dot\r\n\r\nGr\xc3\xbc\xc3\x9fe \xff\r\n  indented\r\nlast line without newline' >"$d/msg"
	"$SEND" -i -R "$DNS" -P "$P" -f sender@example.com alice@example.org carol@example.net <"$d/msg" 2>"$d/err"; rc=$?
	check "send to two domains: exit 0, one \"sent\" line per recipient" "0
smtp_send: <alice@example.org> sent relay=mx1.example.org[127.0.0.2]:P reply=\"250 2.0.0 Ok: stored as ID\"
smtp_send: <carol@example.net> sent relay=mx.example.net[127.0.0.4]:P reply=\"250 2.0.0 Ok: stored as ID\"" \
		"$rc
$(sed -e "s/:$P /:P /" -e 's/stored as [^"]*/stored as ID/' "$d/err")"
	f=$(only_file "$T/mx1/mail/alice/new")
	check "exact round trip: dots, 8-bit, CRLF made LF, last line gains a newline" \
		"$( (tr -d '\r' <"$d/msg"; echo) | od -c)" "$(tail -n +6 "$f" | od -c)"
	check "the receiving Maildir got Return-Path and Delivered-To" "Return-Path: <sender@example.com>
Delivered-To: carol@example.net" "$(head -n 2 "$(only_file "$T/mxnet/mail/carol/new")")"

	# PIPELINING: MAIL, both RCPTs and DATA before any reply
	"$SEND" -v -R "$DNS" -P "$P" -f sender@example.com alice@example.org bob@example.org <"$d/msg" 2>"$d/v"
	out=$(grep -aE '^smtp_send: (C|S): ' "$d/v" | sed -n '/C: EHLO/,/C: QUIT/p' | grep -av '^smtp_send: S: 250-' | sed -E 's/^smtp_send: //' | head -n 8 | sed -E 's/(Hello|queued as) .*/\1 X/')
	check "PIPELINING: one domain, one connection; MAIL, RCPTs, DATA in one go" "C: EHLO $(hostname)
S: 250 HELP
C: MAIL FROM:<sender@example.com> SIZE=$(( $(wc -c <"$d/msg") + 2 )) BODY=8BITMIME
C: RCPT TO:<alice@example.org>
C: RCPT TO:<bob@example.org>
C: DATA
S: 250 2.1.0 Sender <sender@example.com> OK
S: 250 2.1.5 Recipient <alice@example.org> OK" "$out"
	check "-v shows the DNS steps" "1" "$(grep -c 'dns: example.org MX? -> ok (2 records)' "$d/v")"

	# -t: recipients from To:, Cc:, Bcc:; Bcc: removed from every copy
	printf 'From: sender@example.com\nTo: "Last, First" <alice@example.org>,\n\tbob@example.org (Bob)\nCc: team: carol@example.net, dave@example.net;\nBcc: erin@example.net\nSubject: bcc\nDate: Fri, 27 Nov 2026 10:00:00 +0000\nMessage-ID: <bcc@example.com>\n\nhello\n' >"$d/bcc"
	rm -f "$T"/mx1/mail/*/new/* "$T"/mxnet/mail/*/new/*
	"$SEND" -t -R "$DNS" -P "$P" -f sender@example.com <"$d/bcc" 2>"$d/err"; rc=$?
	check "-t: To, Cc (a group), Bcc are all envelope recipients" "0|1 1 1 1 1" \
		"$rc|$(for u in mx1/mail/alice mx1/mail/bob mxnet/mail/carol mxnet/mail/dave mxnet/mail/erin; do count_files "$T/$u/new"; done | tr '\n' ' ' | sed 's/ $//')"
	check "-t: no copy carries the Bcc: header" "0" "$(cat "$T"/mx1/mail/*/new/* "$T"/mxnet/mail/*/new/* | grep -ci '^bcc:')"
	check "-t: the rest of the header is kept, folding included" "To: \"Last, First\" <alice@example.org>,
	bob@example.org (Bob)
Cc: team: carol@example.net, dave@example.net;
Subject: bcc" "$(sed -n '/^To:/,/^Subject:/p' "$(only_file "$T/mxnet/mail/erin/new")")"

	# missing From:, Date:, Message-ID: are added
	rm -f "$T"/mx1/mail/alice/new/*
	printf 'Subject: bare\n\nbody\n' | "$SEND" -R "$DNS" -P "$P" -f sender@example.com alice@example.org 2>/dev/null
	f=$(only_file "$T/mx1/mail/alice/new")
	check "missing From:, Date:, Message-ID: are added" "From: <sender@example.com>|yes|yes|body" \
		"$(grep '^From:' "$f")|$(grep -qE '^Date: [A-Z][a-z]{2}, [0-9]{2} ' "$f" && echo yes)|$(grep -qE '^Message-ID: <.+@.+>$' "$f" && echo yes)|$(tail -n 1 "$f")"

	# CNAME chain, implicit MX, fallback past a dead MX and a 421 MX, literal, smarthost
	start_server "$T/send/fake421.log" "$TOP/tests/fakesmtp" -a 127.0.0.6 -p "$P" greet421
	local fake=$SPID
	rm -f "$T"/mx*/mail/*/new/*
	"$SEND" -R "$DNS" -P "$P" -T 5 -f s@example.com alice@alias.org alice@implicit.org alice@fallback.org alice@busy.org <"$d/msg" 2>"$d/err"; rc=$?
	check "CNAME chain, implicit MX, fallback when the best MX is down or says 421" "0
smtp_send: <alice@alias.org> sent relay=mx1.example.org[127.0.0.2]:P
smtp_send: <alice@implicit.org> sent relay=implicit.org[127.0.0.3]:P
smtp_send: <alice@fallback.org> sent relay=mx2.example.org[127.0.0.3]:P
smtp_send: <alice@busy.org> sent relay=mx2.example.org[127.0.0.3]:P" \
		"$rc
$(sed -e "s/:$P /:P /" -e 's/ reply=.*//' "$d/err")"
	check "the 421 server was tried first" "1" "$(grep -c connection "$T/send/fake421.log")"
	stop_pid "$fake"
	local before
	before=$(wc -l <"$T/send/dns.log")
	"$SEND" -R "$DNS" -P "$P" -f s@example.com 'bob@[127.0.0.2]' <"$d/msg" 2>"$d/err"; rc=$?
	check "address literal: delivered with -P, no DNS query" "0|$before|1" \
		"$rc|$(wc -l <"$T/send/dns.log")|$(count_files "$T/mx1/mail/bob/new")"
	"$SEND" -S "127.0.0.4:$P" -H client.example -f s@example.com dave@example.net <"$d/msg" 2>"$d/err"; rc=$?
	check "-S smarthost: delivered without DNS; -H names us in EHLO" "0|$before|1|Received: from client.example ([127.0.0.1])" \
		"$rc|$(wc -l <"$T/send/dns.log")|$(count_files "$T/mxnet/mail/dave/new")|$(sed -n 3p "$(only_file "$T/mxnet/mail/dave/new")")"
	start_server "$T/send/old.log" "$TOP/tests/fakesmtp" -a 127.0.0.1 -p 0 heloonly
	# 7-bit: an old server offers no 8BITMIME (RFC 6152), see the peers group
	printf 'Subject: old\r\n\r\nplain ASCII\r\n' | "$SEND" -v -S "127.0.0.1:$PORT" -H client.example -f s@example.com x@old.example 2>"$d/err"; rc=$?
	check "EHLO refused: HELO instead, sent" "0|S: 500 Syntax error, command unrecognized|C: HELO client.example|C: MAIL FROM:<s@example.com>" \
		"$rc|$(grep -a -A1 'C: EHLO' "$d/err" | tail -n 1 | sed 's/^smtp_send: //')|$(grep -a 'C: HELO' "$d/err" | sed 's/^smtp_send: //')|$(grep -a 'C: MAIL' "$d/err" | sed 's/^smtp_send: //')"
	stop_pid "$SPID"

	# failures and their exit statuses
	"$SEND" -R "$DNS" -P "$P" -f s@example.com nobody@example.org <"$d/msg" 2>"$d/err"; rc=$?
	check "refused recipient: failed, 69, with the server's reply" "69|smtp_send: <nobody@example.org> failed relay=mx1.example.org[127.0.0.2]:P reply=\"550 5.1.1 <nobody@example.org>: User unknown\"" \
		"$rc|$(sed "s/:$P /:P /" "$d/err")"
	"$SEND" -v -R "$DNS" -P "$P" -f s@example.com x@nomail.org <"$d/msg" 2>"$d/err"; rc=$?
	check "null MX: failed at once, no connection, 69" "69|0|smtp_send: <x@nomail.org> failed relay=none reply=\"domain nomail.org accepts no mail (null MX, RFC 7505)\"" \
		"$rc|$(grep -c 'connected to' "$d/err")|$(grep '> failed' "$d/err")"
	"$SEND" -R "$DNS" -P "$P" -f s@example.com x@nosuch.org alice@example.org <"$d/msg" 2>"$d/err"; rc=$?
	check "NXDOMAIN: 68, the other recipient still sent" "68|smtp_send: <x@nosuch.org> failed relay=none reply=\"domain nosuch.org does not exist (NXDOMAIN)\"|1" \
		"$rc|$(grep nosuch "$d/err")|$(grep -c 'alice@example.org> sent' "$d/err")"
	"$SEND" -R "$DNS" -P "$P" -T 2 -f s@example.com x@broken.org <"$d/msg" 2>/dev/null; rc=$?
	check "SERVFAIL: deferred, 75" "75" "$rc"
	out=$(printf '' | "$SEND" -R "$DNS" alice@example.org 2>&1); rc=$?
	check "empty input: 65" "65|smtp_send: empty input: no message" "$rc|$out"
	out=$(printf 'a\0b\n' | "$SEND" -R "$DNS" alice@example.org 2>&1); rc=$?
	check "NUL bytes: 65" "65" "$rc"
	out=$(printf 'x\n' | "$SEND" -R "$DNS" 2>&1); rc=$?
	check "no recipients: 64" "64" "$rc"
	stop_internet
}

# submit FROM TO...: a message into the submission server's queue.
submit() {
	local from=$1 r; shift
	{ printf 'HELO c\nMAIL FROM:<%s>\n' "$from"
	  for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
	  printf 'DATA\nFrom: <%s>\nSubject: queued\nMessage-ID: <q%s@example.com>\n\nqueued body\n.\nQUIT\n' "$from" "$RANDOM"; } |
		SMTP_HOST=127.0.0.8 smtp "$SUBPORT" | grep -c '^250 2.0.0'
}

t_queue() {
	start_internet queue
	local d=$T/queue q out rc e
	# the submission server is example.com's MX too: bounces come home
	start_smtpd sub -a 127.0.0.8 -p "$P" -m mail -q queue -d example.com
	SUB=$SPID; SUBPORT=$P
	q=$T/sub/queue
	mkdir -p "$T/sub/mail/sender"
	out=$(submit sender@example.com alice@example.org carol@example.net)
	check "submission: remote recipients queued, not delivered" "1 1 0" "$out $(count_files "$q/entries") $(count_files "$T/mx1/mail/alice/new")"
	"$SEND" -q "$q" -R "$DNS" -P "$P" 2>"$d/run1"; rc=$?
	check "queue run delivers and removes the entry" "0|1 1|0" \
		"$rc|$(count_files "$T/mx1/mail/alice/new") $(count_files "$T/mxnet/mail/carol/new")|$(count_files "$q/entries")"
	check "the relayed copy has both Received: lines, newest first" "2|from c ([127.0.0.1])" \
		"$(grep -c '^Received:' "$(only_file "$T/mx1/mail/alice/new")")|$(grep -m1 -A0 '^Received: from c' "$(only_file "$T/mx1/mail/alice/new")" | sed 's/Received: //')"

	# deferred: nothing listens at later.org's MX yet
	submit sender@example.com x@later.org >/dev/null
	e=$(only_file "$q/entries")
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 2 2>"$d/run2"; rc=$?
	check "deferred: 75, entry kept with attempts 1 and a later next attempt" "75|$e|attempts 1|yes" \
		"$rc|$(only_file "$q/entries")|$(grep '^attempts' "$e")|$([ "$(sed -n 's/^next //p' "$e")" -gt "$(date +%s)" ] && echo yes)"
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 2 2>"$d/run3"; rc=$?
	check "not due yet: skipped, untouched" "0|attempts 1|skipped=1" "$rc|$(grep '^attempts' "$e")|$(grep -o 'skipped=[0-9]*' "$d/run3")"
	start_smtpd later -a 127.0.0.7 -p "$P" -m mail -d later.org
	local later=$SPID
	mkdir -p "$T/later/mail/x"
	"$SEND" -q "$q" -F -R "$DNS" -P "$P" 2>"$d/run4"; rc=$?
	check "-F: delivered on the next run, entry removed" "0|1|0" "$rc|$(count_files "$T/later/mail/x/new")|$(count_files "$q/entries")"
	stop_pid "$later"

	# a permanent failure: a bounce (RFC 3464) that comes home
	submit sender@example.com nobody@example.org alice@example.org >/dev/null
	"$SEND" -q "$q" -R "$DNS" -P "$P" 2>"$d/run5"; rc=$?
	check "bounce: delivered to the sender's Maildir in the same run; queue empty" "0|1|0|0" \
		"$rc|$(count_files "$T/sub/mail/sender/new")|$(count_files "$q/entries")|$(count_files "$q/tmp")"
	local b
	b=$(only_file "$T/sub/mail/sender/new")
	check "bounce: from <>, multipart/report delivery-status" "Return-Path: <>|1|1" \
		"$(head -n 1 "$b")|$(grep -c '^Content-Type: multipart/report; report-type=delivery-status;' "$b")|$(grep -c '^Content-Type: message/delivery-status' "$b")"
	check "bounce: per-recipient status of the failed one only" "Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: User unknown" \
		"$(sed -n '/^Final-Recipient/,/^Diagnostic-Code/p' "$b")"
	check "bounce: no line over 78 characters, its text nor the returned Received: (RFC 5322 2.1.1)" "" \
		"$(awk 'length($0) > 78 { print NR ": " $0 }' "$b")"
	check "bounce: the original headers are returned" "1" \
		"$(sed -n '/^Content-Type: text\/rfc822-headers/,$p' "$b" | grep -c '^Subject: queued')"

	# a bounce never bounces
	submit '' nobody@example.org >/dev/null
	"$SEND" -q "$q" -R "$DNS" -P "$P" 2>"$d/run6"; rc=$?
	check "a failed message from <> is discarded, not bounced" "0|1|1" \
		"$rc|$(count_files "$T/sub/mail/sender/new")|$(grep -c 'undeliverable bounce discarded' "$d/run6")"

	# too old (-e): deferred becomes a bounce
	submit sender@example.com x@later.org >/dev/null
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 2 -e 0 2>"$d/run7"; rc=$?
	check "-e: a message too long in the queue is bounced" "0|2|0|1" \
		"$rc|$(count_files "$T/sub/mail/sender/new")|$(count_files "$q/entries")|$(grep -l 'Final-Recipient: rfc822; x@later.org' "$T"/sub/mail/sender/new/* | wc -l | tr -d ' ')"

	# a lock: a second runner skips what the first is working on
	start_server "$d/stall.log" "$TOP/tests/fakesmtp" -a 127.0.0.9 -p "$P" stall
	local stall=$SPID first
	submit sender@example.com x@stall.org >/dev/null
	"$SEND" -q "$q" -R "$DNS" -P "$P" -T 3 2>"$d/runA" & first=$!
	PIDS+=("$first")
	poll 200 grep -q connection "$d/stall.log"
	"$SEND" -q "$q" -F -R "$DNS" -P "$P" -T 3 2>"$d/runB"; rc=$?
	wait "$first"
	check "lock: the second runner skips the entry the first holds" "skipped=1 sent=0|deferred=1" \
		"$(grep -o 'skipped=[0-9]*' "$d/runB") $(grep -o 'sent=[0-9]*' "$d/runB")|$(grep -o 'deferred=[0-9]*' "$d/runA")"
	stop_pid "$stall"
	stop_pid "$SUB"
	stop_internet
}

t_hostile() {
	# servers that misbehave: each ends in a deferral, within -T, no crash
	start_dnsd hostile <<<"$ZONE"
	local mode out rc start
	for mode in stall endless longline garbage rcpt451; do
		start_server "$T/hostile/$mode.log" "$TOP/tests/fakesmtp" -a 127.0.0.10 -p 0 "$mode"
		start=$(date +%s)
		out=$(printf 'Subject: x\n\nx\n' | "$SEND" -R "$DNS" -P "$PORT" -T 2 -f s@example.com x@tempfail.org 2>&1); rc=$?
		check "hostile server ($mode): deferred (75) within the timeout" "75|deferred|yes" \
			"$rc|$(echo "$out" | grep -o 'deferred' | head -n 1)|$([ $(( $(date +%s) - start )) -le 8 ] && echo yes)"
		stop_pid "$SPID"
	done
	stop_pid "$DPID"
}


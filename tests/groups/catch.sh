# shellcheck shell=bash
# tests/groups/catch.sh, sourced by test.sh (after send.sh: it uses ZONE,
# SEND, start_internet)
# Tests written to kill mutants (tests/mutants.sh) the other groups let
# live: each pins down one rule at its exact boundary, one group per area.
# Groups: catch_relay catch_bcc catch_hops catch_size catch_alias
#         catch_slowdata catch_parse catch_state catch_cname catch_dns
#         catch_queue catch_atomic catch_durable
TEST_GROUPS+=(catch_relay catch_bcc catch_hops catch_size catch_alias catch_slowdata
	catch_parse catch_state catch_cname catch_dns catch_queue catch_atomic catch_durable)

# ---- smtpd: relay control on a prefix that is not a whole number of bytes ----

t_catch_relay() {
	# -r 127.0.0.128/25: the last byte's top bit decides.  The whole of
	# 127.0.0.0/8 is loopback, so tests/chat -s plays hosts inside (.128,
	# .201, .255) and outside (.1, .100, .127).  .201 and .100 differ from
	# the network in their low bits too: a mask shifted the wrong way
	# (testing the low bits) lets .100 relay and refuses .201.
	start_smtpd crelay -m mail -r 127.0.0.128/25
	local d=$T/crelay src out=""
	mkdir -p "$d/mail/alice"
	for src in 127.0.0.128 127.0.0.201 127.0.0.255 127.0.0.1 127.0.0.100 127.0.0.127; do
		out+="$src $(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<x@remote.example>\nRCPT TO:<alice@LocalHost>\nQUIT\n' |
			smtp "$PORT" -l -s "$src" | codes | sed -n '4,5p' | tr '\n' ' ')|"
	done
	check "-r 127.0.0.128/25: inside may relay, outside may not; mail to LocalHost is local for both" \
		"127.0.0.128 250 250 |127.0.0.201 250 250 |127.0.0.255 250 250 |127.0.0.1 550 250 |127.0.0.100 550 250 |127.0.0.127 550 250 |" "$out"
	check "the log names each client and its relay right" "yes yes yes no no no" \
		"$(for src in 128 201 255 1 100 127; do sed -n "s/.* connect client=127\.0\.0\.$src relay=\([a-z]*\)$/\1/p" "$d/log"; done | tr '\n' ' ' | sed 's/ $//')"
	stop_pid "$SPID"
}

# ---- smtp_send -t: Bcc in any case ----------------------------------------------

t_catch_bcc() {
	start_internet cbcc
	local d=$T/cbcc rc
	# RFC 5322 field names are case-insensitive: "bcc:" and "BCC:" are Bcc.
	printf 'From: sender@example.com\nTo: alice@example.org\nbcc: carol@example.net\nBCC: dave@example.net\nSubject: blind\nDate: Fri, 27 Nov 2026 10:00:00 +0000\nMessage-ID: <blind@example.com>\n\nhello\n' >"$d/msg"
	"$SEND" -t -R "$DNS" -P "$P" -f sender@example.com <"$d/msg" 2>"$d/err"; rc=$?
	check "-t: bcc: and BCC: recipients get the message" "0|1 1 1" \
		"$rc|$(for u in mx1/mail/alice mxnet/mail/carol mxnet/mail/dave; do count_files "$T/$u/new"; done | tr '\n' ' ' | sed 's/ $//')"
	check "-t: no copy shows bcc: or BCC:, the other fields stay" "0|From: sender@example.com
To: alice@example.org
Subject: blind" \
		"$(cat "$T"/mx1/mail/*/new/* "$T"/mxnet/mail/*/new/* 2>/dev/null | grep -ci '^bcc')|$(sed -n '/^From:/,/^Subject:/p' "$(only_file "$T/mxnet/mail/carol/new")")"
	stop_internet
}

# ---- smtpd: hops are counted in the header only -------------------------------------

t_catch_hops() {
	start_smtpd chops -m mail
	local d=$T/chops out i
	mkdir -p "$d/mail/alice"
	# RFC 5321 6.3 counts trace fields, which live in the header.  A
	# forwarded or bounced message quotes Received: lines in its body.
	out=$( { printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
		 for i in $(seq 1 100); do printf 'Received: from hop%d by hop%d; Fri, 27 Nov 2026 00:00:00 +0000\r\n' "$i" "$i"; done
		 printf 'Subject: 100 hops, and more quoted below\r\n\r\nthe bounce said:\r\n'
		 for i in $(seq 1 5); do printf 'Received: from q%d by q%d; Fri, 27 Nov 2026 00:00:00 +0000\r\n' "$i" "$i"; done
		 printf '.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: none in the header\r\n\r\n'
		 for i in $(seq 1 150); do printf 'Received: from q%d by q%d; Fri, 27 Nov 2026 00:00:00 +0000\r\n' "$i" "$i"; done
		 printf '.\r\nQUIT\r\n'; } | "$CHAT" 127.0.0.1 "$PORT" | codes | tr '\n' ' ')
	check "Received: lines in the body are not hops (100 in the header is no loop)" \
		"220 250 250 250 354 250 250 250 354 250 221 |2" "$out|$(count_files "$d/mail/alice/new")"
	stop_pid "$SPID"
}

# ---- smtpd: -s at the exact boundary ------------------------------------------------

t_catch_size() {
	start_smtpd csize -m mail -s 1000
	local d=$T/csize out
	mkdir -p "$d/mail/alice"
	# RFC 1870: the size counts CRLF as two octets and does not count the
	# dots added by stuffing.  20 lines of 48 octets + CRLF = 1000 octets,
	# one of them sent as "..x": exactly the limit.  One more octet is over.
	lines() {   # lines N EXTRA: N-1 lines of 48 characters, then one of 48+EXTRA
		local i
		printf '..%047d\r\n' 0
		for ((i = 2; i < $1; i++)); do printf '%048d\r\n' "$i"; done
		printf "%0$((48 + $2))d\r\n" 0
	}
	out=$( { printf 'EHLO c\r\nMAIL FROM:<a@b.test> SIZE=1000\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
		 lines 20 0
		 printf '.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n'
		 lines 20 1
		 printf '.\r\nQUIT\r\n'; } | "$CHAT" 127.0.0.1 "$PORT" | codes | grep -v -- '-$' | tr '\n' ' ')
	check "-s 1000: a message of exactly 1000 octets is taken, 1001 is refused" \
		"220 250 250 250 354 250 250 250 354 552 221 " "$out"
	check "the message at the limit is stored: 20 lines, the stuffing dot removed" "20|.0000" \
		"$(strip_received "$(only_file "$d/mail/alice/new")" | tail -n +3 | wc -l | tr -d ' ')|$(strip_received "$(only_file "$d/mail/alice/new")" | sed -n 3p | cut -c1-5)"
	stop_pid "$SPID"
}

# ---- smtpd: an alias whose members are all remote ----------------------------------

t_catch_alias() {
	local d=$T/calias out
	mkdir -p "$d/mail/alice"
	printf 'fwd: someone@remote.example\nfwd2: "john doe"@remote.example, other@remote.example\n' >"$d/aliases"
	start_smtpd calias -m mail -x "$d/aliases"
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<fwd@localhost>\nRCPT TO:<fwd2@localhost>\nDATA\nSubject: fwd\n\nx\n.\nQUIT\n' |
		smtp "$PORT" -l | norm | sed -n '4,5p')
	check "an alias with only remote members is a valid recipient" "250 2.1.5 Recipient <fwd@localhost> OK
250 2.1.5 Recipient <fwd2@localhost> OK" "$out"
	check "its members are queued" "rcpt <someone@remote.example>
rcpt <\"john doe\"@remote.example>
rcpt <other@remote.example>" "$(grep -h '^rcpt' "$d"/queue/entries/* 2>/dev/null)"
	stop_pid "$SPID"
}

# ---- smtpd: -t is per line, also in DATA ---------------------------------------------

t_catch_slowdata() {
	start_smtpd cslow -m mail -t 2
	local d=$T/cslow out
	mkdir -p "$d/mail/alice"
	# Six lines and the dot, 0.8 s apart: 5.6 s in all against -t 2.
	# Each line is in time, so the message is (RFC 5321 4.5.3.2.5 sets a
	# time per data block, not per message).
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@localhost>\nDATA\nSubject: slow\n\none\ntwo\nthree\nfour\n.\nQUIT\n' |
		smtp "$PORT" -l -d 800 -T 30 | codes | tr '\n' ' ')
	check "a slow but steady client (lines 0.8 s apart, -t 2) is served" "220 250 250 250 354 250 221 |1" \
		"$out|$(count_files "$d/mail/alice/new")"
	stop_pid "$SPID"
}

# ---- smtpd: address and command syntax at its edges -----------------------------------

t_catch_parse() {
	start_smtpd cparse -m mail
	local d=$T/cparse out
	mkdir -p "$d/mail/alice"
	out=$(rcpt_codes "$PORT" '<alice@local-host>
<alice@localhost->
<alice@-localhost>
<alice@localhost.>
<alice@a..localhost>
<alice.@localhost>
<al..ice@localhost>')
	check "domains: no label starts or ends with '-', no empty label; local parts: no trailing or double dot" "250 <alice@local-host>
501 5.1.3
501 5.1.3
501 5.1.3
501 5.1.3
501 5.1.3
501 5.1.3" "$out"
	stop_pid "$SPID"
}

# ---- smtpd: what RSET and HELO leave behind -------------------------------------------

t_catch_state() {
	start_smtpd cstate -m mail
	local d=$T/cstate out
	mkdir -p "$d/mail/alice"
	# RFC 5321 4.1.1.5: RSET clears the sender too, not only recipients;
	# 4.1.4: HELO/EHLO in a transaction abandons it.
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRSET\nRCPT TO:<alice@localhost>\nMAIL FROM:<a@b.test>\nHELO again\nRCPT TO:<alice@localhost>\nDATA\nQUIT\n' |
		smtp "$PORT" -l | norm)
	check "RSET or HELO right after MAIL: the sender is gone, RCPT gets 503" "220 mx.test ESMTP
250 mx.test Hello c [127.0.0.1]
250 2.1.0 Sender <a@b.test> OK
250 2.0.0 Ok
503 5.5.1 Need MAIL before RCPT
250 2.1.0 Sender <a@b.test> OK
250 mx.test Hello again [127.0.0.1]
503 5.5.1 Need MAIL before RCPT
503 5.5.1 Need MAIL and RCPT before DATA
221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
}

# ---- smtp_send: CNAME chains of exactly the limit, and one more -------------------------

CHAIN_ZONE=$(
	for i in 0 1 2 3 4 5 6 7; do echo "c$i.chain.test CNAME c$((i + 1)).chain.test"; done
	echo "c8.chain.test MX 10 mx1.example.org"
	for i in 0 1 2 3 4 5 6 7 8; do echo "d$i.chain.test CNAME d$((i + 1)).chain.test"; done
	echo "d9.chain.test MX 10 mx1.example.org"
	echo "e.chain.test MX 10 h0.chain.test"
	for i in 0 1 2 3 4 5 6 7 8; do echo "h$i.chain.test CNAME h$((i + 1)).chain.test"; done
	echo "h9.chain.test A 127.0.0.2"
	echo "mx1.example.org A 127.0.0.2"
	echo "broken.org SERVFAIL"
	echo "end.org MALFORMED ptrend"
	echo "other.org WRONGQUESTION"
)

t_catch_cname() {
	start_dnsd ccname <<<"$CHAIN_ZONE"
	local out rc i want
	out=$("$SEND" -R "$DNS" -M c0.chain.test); rc=$?
	want="route to c0.chain.test"
	for i in 0 1 2 3 4 5 6 7; do want+=$'\n'"  c$i.chain.test is an alias (CNAME) for c$((i + 1)).chain.test"; done
	check "a CNAME chain of 8 hops (the limit) is followed" "$want
  MX records of c8.chain.test, best first:
    10 mx1.example.org: 127.0.0.2|0" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M d0.chain.test); rc=$?
	want="route to d0.chain.test"
	for i in 0 1 2 3 4 5 6 7; do want+=$'\n'"  d$i.chain.test is an alias (CNAME) for d$((i + 1)).chain.test"; done
	check "a chain of 9 hops is too long: temporary failure (75), no crash" "$want
  DNS lookup of d0.chain.test MX failed: CNAME chain too long at d8.chain.test -> d9.chain.test
  -> temporary failure: try later|75" "$out|$rc"
	out=$("$SEND" -R "$DNS" -M e.chain.test); rc=$?
	check "the same limit for an MX host's address" "route to e.chain.test
  no address for any mail exchanger of e.chain.test: h0.chain.test AAAA: CNAME chain too long at h8.chain.test -> h9.chain.test
  -> temporary failure: try later|75" "$out|$rc"
	stop_pid "$DPID"
}

# ---- smtp_send: answers that are not what they seem ------------------------------------

t_catch_dns() {
	start_dnsd cdns <<<"$CHAIN_ZONE"
	local out rc
	# The answer (over TCP, in a buffer of exactly its size) ends with the
	# first byte of a compression pointer.  Reading its second byte would
	# read one byte past the message: only a sanitizer build sees that
	# (make test-sanitize), so there this check kills that mutant.
	out=$("$SEND" -R "$DNS" -T 2 -M end.org 2>&1); rc=$?
	check "an answer ending in half a compression pointer: malformed, temporary (75)" "route to end.org
  DNS lookup of end.org MX failed: malformed answer: a record is cut off or has a bad name
  -> temporary failure: try later|75|yes" \
		"$out|$rc|$(grep -q 'query end.org 15 tcp' "$T/cdns/dns.log" && echo yes)"
	# RFC 5452 9.1: an answer counts only if it repeats our question.
	out=$("$SEND" -R "$DNS" -T 1 -M other.org 2>&1); rc=$?
	check "an answer to another question is ignored (then: timeout, 75)" "  DNS lookup of other.org MX failed: $DNS: no answer (timeout)|75" \
		"$(echo "$out" | sed -n 2p)|$rc"
	stop_pid "$DPID"
}

# ---- smtp_send -q: retry schedule and expiry, from times the test writes -----------------

# entry DIR ID SENDER ARRIVAL ATTEMPTS NEXT RCPT: a queue entry as smtpd writes it.
entry() {
	mkdir -p "$1/entries" "$1/tmp"
	printf 'version 1\nid %s\nsender <%s>\narrival %s\nattempts %s\nnext %s\nrcpt <%s>\n\nSubject: %s\n\nbody\n' \
		"$2" "$3" "$4" "$5" "$6" "$7" "$2" >"$1/entries/$2"
}

# next_after DIR ID T0 T1 WANT: "attempts=N next=now+WANT" when the
# entry's next is WANT seconds after some moment of the run [T0, T1];
# else the seconds it is after T1 and T0.
next_after() {
	local f=$1/entries/$2 n
	[ -f "$f" ] || { echo gone; return; }
	n=$(sed -n 's/^next //p' "$f")
	if [ "$((n - $4))" -le "$5" ] && [ "$5" -le "$((n - $3))" ]; then
		echo "attempts=$(sed -n 's/^attempts //p' "$f") next=now+$5"
	else
		echo "attempts=$(sed -n 's/^attempts //p' "$f") next=now+$((n - $4))..$((n - $3))"
	fi
}

t_catch_queue() {
	start_dnsd cqueue <<<"$CHAIN_ZONE"
	local q=$T/cqueue/queue t0 t1 rc
	t0=$(date +%s)
	# broken.org answers SERVFAIL: every attempt is deferred, at once.
	entry "$q" 1000.A s@broken.org $((t0 - 3600)) 2 $((t0 - 1)) x@broken.org
	entry "$q" 1000.B s@broken.org $((t0 - 7200)) 9 "$t0" x@broken.org
	entry "$q" 1000.C s@broken.org $((t0 - 2 * 86400)) 5 $((t0 - 60)) x@broken.org
	entry "$q" 1000.D s@broken.org $((t0 - 86400 + 3600)) 5 $((t0 - 60)) x@broken.org
	"$SEND" -q "$q" -R "$DNS" -T 2 -e 1d 2>"$T/cqueue/run"; rc=$?
	t1=$(date +%s)
	# backoff: 5 min doubled per earlier attempt, at most 4 h, from now
	check "retry: attempts 2 -> next in 20 min; attempts 9 -> in 4 h (the cap), counted from now" \
		"attempts=3 next=now+1200|attempts=10 next=now+14400" \
		"$(next_after "$q" 1000.A "$t0" "$t1" 1200)|$(next_after "$q" 1000.B "$t0" "$t1" 14400)"
	# expiry: the age is now - arrival, however recent the last attempt
	local b
	b=$(grep -l '^sender <>$' "$q"/entries/* | head -n 1)
	check "-e 1d: 2 days since arrival is expired (bounced), 23 h is not" "gone|attempts=6|1|x@broken.org|75" \
		"$(next_after "$q" 1000.C "$t0" "$t1" 0)|$(next_after "$q" 1000.D "$t0" "$t1" 0 | cut -d' ' -f1)|$(grep -l '^sender <>$' "$q"/entries/* | wc -l | tr -d ' ')|$([ -n "$b" ] && sed -n 's/^Final-Recipient: rfc822; //p' "$b")|$rc"
	# The exact boundary needs a clock that stands still: faketime.  (Not
	# with sanitizers: libfaketime and ASan's start-up deadlock.)
	if ! command -v faketime >/dev/null; then
		skip "expiry at the exact boundary: faketime is not installed"
	elif [ -n "${SANITIZED:-}" ]; then
		skip "expiry at the exact boundary: faketime does not work with sanitizers"
	else
		q=$T/cqueue/queue2
		local now=1800000000
		entry "$q" 1000.E s@broken.org $((now - 86400)) 5 $((now - 60)) x@broken.org
		entry "$q" 1000.F s@broken.org $((now - 86399)) 5 $((now - 60)) x@broken.org
		TZ=UTC FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$(date -u -d @$now '+%Y-%m-%d %H:%M:%S')" \
			"$SEND" -q "$q" -R "$DNS" -T 2 -e 1d 2>"$T/cqueue/run2"
		check "-e 1d with a frozen clock: exactly 86400 s old expires, 86399 s does not; next = now + 5 min x 2^5" \
			"gone|attempts=6 next=now+9600" \
			"$(next_after "$q" 1000.E $now $now 0)|$(next_after "$q" 1000.F $now $now 9600)"
	fi
	stop_pid "$DPID"
}

# ---- smtpd: all copies or none --------------------------------------------------------

t_catch_atomic() {
	start_smtpd catomic -m mail
	local d=$T/catomic out
	mkdir -p "$d/mail/alice" "$d/mail/bob/tmp" "$d/mail/bob/cur"
	: >"$d/mail/bob/new"    # not a directory: the rename into it fails
	# alice's copy is renamed into new/ first, then bob's rename fails:
	# alice's must be taken back, or a 451 (the client will retry) would
	# leave her a copy, and the retry another.
	out=$(printf 'HELO c
MAIL FROM:<a@b.test>
RCPT TO:<alice@localhost>
RCPT TO:<bob@localhost>
DATA
Subject: all or none

x
.
QUIT
' |
		smtp "$PORT" -l | norm | sed -n 7p)
	check "a copy that cannot be renamed into place: 451, and the copy already in new/ is taken back" \
		"451 4.3.0 Local error in processing|0 0" \
		"$out|$(count_files "$d/mail/alice/new") $(count_files "$d/mail/alice/tmp")"
	stop_pid "$SPID"
}

# ---- durability: tmp/, fsync, rename, directory fsync, then the 250 ------------------------

# The order of the file system calls in an strace -y log (one process),
# with the directory DIR's prefix removed from paths.  Every file must be
# created in a tmp/ directory, fsynced after its last write, then renamed;
# the directory it was renamed into must be fsynced before the next
# promise: the 250 after DATA, or the removal of a queue entry.  Prints
# "renames=N promises=M" and each breach of that order.
durable_order() {
	sed -e "s|$(cd "$2" && pwd -P)/||g" -e "s|$2/||g" -e 's|"\./|"|g' "$1" | awk '
	function fdpath(   s) {        # the path of the first argument, a descriptor
		if (!match($0, /\(-?[0-9]+<[^>]*>/)) return ""
		s = substr($0, RSTART, RLENGTH); sub(/^[^<]*</, "", s); sub(/>$/, "", s); return s }
	function arg(n,   s, i, a) { s = $0      # the nth quoted argument
		for (i = 1; i <= n; i++) {
			if (!match(s, /"[^"]*"/)) return ""
			a = substr(s, RSTART + 1, RLENGTH - 2); s = substr(s, RSTART + RLENGTH)
		}
		return a }
	function promise(what,   d) { promises++
		for (d in pend) if (pend[d]) { bad = bad " " what "-before-fsync-of:" d; pend[d] = 0 } }
	/^(open|openat)\(/ && /O_CREAT/ { p = arg(1)
		if (p !~ /(^|\/)tmp\//) bad = bad " created-outside-tmp:" p
		created[p] = 1; dirty[p] = 1; next }
	/^write\(/ { p = fdpath(); if (p in created) dirty[p] = 1
		if (index($0, "250 2.0.0 Ok: ")) promise("250"); next }
	/^(fsync|fdatasync)\(/ { p = fdpath(); if (p in created) dirty[p] = 0; else pend[p] = 0; next }
	/^rename(at2?)?\(/ { s = arg(1); t = arg(2); renames++
		if (!(s in created)) bad = bad " renamed-but-not-created-here:" s
		else if (dirty[s]) bad = bad " renamed-before-fsync:" s
		if (s !~ /(^|\/)tmp\//) bad = bad " renamed-from-outside-tmp:" s
		d = t; sub(/\/[^\/]*$/, "", d); pend[d] = 1; next }
	/^unlink(at)?\(/ && /= 0$/ { if (arg(1) ~ /(^|\/)entries\//) promise("unlink") }
	END { for (d in pend) if (pend[d]) bad = bad " never-fsynced:" d
		printf "renames=%d promises=%d%s\n", renames, promises, bad }'
}

STRACE_CALLS=open,openat,write,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat

t_catch_durable() {
	if ! command -v strace >/dev/null || ! strace -qq -e trace=none true 2>/dev/null; then
		skip "durability order: strace is not installed or cannot trace here"
		return
	fi
	# LeakSanitizer cannot work under ptrace: off here (only) in the
	# sanitized suite; every other group checks for leaks.
	local ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:detect_leaks=0}
	export ASAN_OPTIONS
	local d=$T/cdur out f smtpd_pid
	mkdir -p "$d/mail/alice" "$d/mail/bob"
	# -ff: one log per process, so the session's calls are in order
	start_server "$d/log" sh -c 'cd "$1" && shift && exec "$@"' sh "$d" \
		strace -ff -qq -y -s 40 -e trace=$STRACE_CALLS -o "$d/trace" "$TOP/smtpd" -p 0 -n mx.test -t 20 -m mail
	smtpd_pid=$(children_of "$SPID")
	PIDS+=("$smtpd_pid")
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@localhost>\nRCPT TO:<bob@localhost>\nRCPT TO:<x@remote.example>\nDATA\nSubject: durable\n\nx\n.\nQUIT\n' |
		smtp "$PORT" -l | codes | tr '\n' ' ')
	stop_pid "$smtpd_pid"
	stop_pid "$SPID"
	f=$(grep -l '250 2.0.0 Ok: ' "$d"/trace.* | head -n 1)
	check "smtpd: each copy in tmp/, fsynced, renamed, its directory fsynced, then 250" \
		"220 250 250 250 250 250 354 250 221 |1 1 1|renames=3 promises=1" \
		"$out|$(count_files "$d/mail/alice/new") $(count_files "$d/mail/bob/new") $(count_files "$d/queue/entries")|$(durable_order "$f" "$d")"

	# smtp_send -q: a deferral rewrites an entry, an expired one is
	# bounced: the bounce is durable before the entry goes.
	start_dnsd cdurdns <<<"$CHAIN_ZONE"
	local q=$d/q t0
	t0=$(date +%s)
	entry "$q" 1000.A s@broken.org $((t0 - 3600)) 2 $((t0 - 1)) x@broken.org
	entry "$q" 1000.C s@broken.org $((t0 - 2 * 86400)) 5 $((t0 - 60)) x@broken.org
	# -f: each entry is delivered by a process of its own (one at a time
	# with -j 1, so the calls stay in order); the pids are cut off
	strace -f -qq -y -s 40 -e trace=$STRACE_CALLS -o "$d/qtrace.pids" "$SEND" -q "$q" -R "$DNS" -T 2 -e 1d 2>"$d/qrun"
	sed -E 's/^[0-9]+ +//' "$d/qtrace.pids" >"$d/qtrace"
	check "smtp_send -q: rewritten entry and bounce in tmp/, fsynced, renamed, directory fsynced before the old entry goes" \
		"renames=3 promises=1|2" "$(durable_order "$d/qtrace" "$d")|$(count_files "$q/entries")"
	stop_pid "$DPID"
}

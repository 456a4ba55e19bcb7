# shellcheck shell=bash
# tests/groups/interop.sh, sourced by test.sh
# real peers: the programs against unmodified Debian software
# Groups: interop_dns interop_postfix interop_clients interop_readers
#
# Everything runs on loopback as a private instance: its own
# configuration, pid and log files in $T, an unprivileged port, started
# in the foreground and stopped by pid (its children too).  Nothing here
# touches a system service, and nothing is left running.  A peer that is
# not installed is reported and skipped; with INTEROP_REQUIRE=1 (CI) a
# missing peer is a failure.  Peers and their Debian packages:
#   NSD (nsd), dnsmasq (dnsmasq-base)     DNS servers for smtp_send
#   Postfix (postfix)                     next hop for smtp_send, sender to smtpd
#   swaks (swaks), curl (curl), Python smtplib (python3)   clients of smtpd
#   Python mailbox (python3), mblaze (mblaze)               readers of its Maildirs
TEST_GROUPS+=(interop_dns interop_postfix interop_clients interop_readers)

# ---- peers -------------------------------------------------------------------------

# ip_peer NAME PACKAGE PROGRAM...: true if every PROGRAM is installed; else
# say which peer is missing (skipped, or failed under INTEROP_REQUIRE).
ip_peer() {
	local name=$1 pkg=$2 p; shift 2
	for p in "$@"; do
		if ! command -v "$p" >/dev/null 2>&1 && [ ! -x "$p" ]; then
			if [ -n "${INTEROP_REQUIRE:-}" ]; then
				not_ok "interop: $name is missing ($p; Debian package $pkg), and INTEROP_REQUIRE is set"
			else
				skip "interop: $name is not installed ($p; Debian package $pkg): its tests are skipped"
			fi
			return 1
		fi
	done
}

# Debian's own interpreter, not one a version manager put first in PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo /usr/bin/python3)

# A TCP and UDP port of 127.0.0.0/8 that nothing uses now, for the peers
# that cannot take port 0.  Below 32768, so it is not one of Linux's
# ephemeral ports that a client could take meanwhile; the callers still
# retry with another port if the server cannot bind it.
ip_free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 12000))
		if command -v ss >/dev/null 2>&1; then
			[ -z "$(ss -Htuan "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
		elif ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"; return 0
		fi
	done
	return 1
}

# Stop a server that has children of its own: the children it has now
# are noted first, then the server, then any child still there; all by pid.
ip_stop_tree() {
	local kids p
	kids=$(children_of "$1")
	stop_pid "$1"
	for p in $kids; do
		if alive "$p"; then
			kill -TERM "$p" 2>/dev/null
			poll 100 dead "$p" || kill -KILL "$p" 2>/dev/null
		fi
	done
}

# ---- the zone, in three dialects -----------------------------------------------------

# The lab zone (tests/dnsd format) and what the interop tests add: a
# CNAME chain of two, and 40 MX records listed worst first, which do not
# fit into 512 bytes (tests/dnsd needs TRUNCATE for that; NSD and dnsmasq
# truncate by themselves).  Behaviour lines (SERVFAIL, TRUNCATE) exist
# only for tests/dnsd and are left out of the conversions.
interop_zone() {
	local p
	grep -v '^#' "$TOP/lab/zone"
	echo "chain.example.org    CNAME  cs.example.net"
	for ((p = 50; p >= 11; p--)); do echo "big.example.org      MX     $p mx$p.example.org"; done
	for ((p = 11; p <= 50; p++)); do echo "mx$p.example.org     A      127.0.1.$p"; done
	echo "big.example.org      TRUNCATE"
}

# The records alone, "name TYPE data...", names lower-case.
ip_zone_records() {
	awk 'NF >= 3 && $2 ~ /^(A|AAAA|MX|CNAME)$/ { $1 = tolower($1); print }' "$1"
}

# The apexes: every name's last two labels.
ip_zone_apexes() {
	ip_zone_records "$1" | awk '{ n = split($1, l, "."); print l[n - 1] "." l[n] }' | sort -u
}

# An RFC 1035 master file for NSD: every record under APEX, absolute names.
ip_zone_to_nsd() {
	local zone=$1 apex=$2
	printf '$TTL 300\n%s. IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300\n%s. IN NS ns.invalid.\n' "$apex" "$apex"
	ip_zone_records "$zone" | awk -v apex="$apex" '
		$1 != apex && substr($1, length($1) - length(apex)) != "." apex { next }
		$2 == "MX"    { print $1 ". IN MX " $3 " " ($4 == "." ? "." : $4 ".") ; next }
		$2 == "CNAME" { print $1 ". IN CNAME " $3 "."; next }
		{ print $1 ". IN " $2 " " $3 }'
}

# dnsmasq's configuration: local data only, never an upstream server.
# dnsmasq answers an MX set in the reverse order of its lines, so the
# lines go in reverse: on the wire the records keep the zone's order.
ip_zone_to_dnsmasq() {
	local a
	printf 'no-resolv\nno-hosts\nno-poll\n'
	for a in $(ip_zone_apexes "$1"); do echo "local=/$a/"; done
	ip_zone_records "$1" | awk '
		$2 == "MX"    { mx[++n] = "mx-host=" $1 "," $4 "," $3; next }
		$2 == "CNAME" { print "cname=" $1 "," $3; next }
		{ print "host-record=" $1 "," $3 }
		END { while (n > 0) print mx[n--] }'
}

# ip_start_nsd DIR ZONE: NSD on 127.0.0.1, a free port, in the foreground.
# Sets SPID, PORT (empty if it did not start).
ip_start_nsd() {
	local d=$1 zone=$2 a try
	mkdir -p "$d"
	for try in 1 2 3 4 5; do
		PORT=$(ip_free_port) || return 1
		{
			printf 'server:\n  ip-address: 127.0.0.1\n  port: %s\n  do-ip6: no\n' "$PORT"
			printf '  username: ""\n  chroot: ""\n  database: ""\n  zonesdir: "%s"\n' "$d"
			printf '  zonelistfile: "%s/zone.list"\n  xfrdfile: "%s/xfrd.state"\n  xfrdir: "%s"\n' "$d" "$d" "$d"
			printf '  pidfile: "%s/nsd.pid"\n  logfile: "%s/nsd.log"\n' "$d" "$d"
			printf '  server-count: 1\n  verbosity: 1\n  zonefiles-write: 0\n'
			printf 'remote-control:\n  control-enable: no\n'
			for a in $(ip_zone_apexes "$zone"); do
				ip_zone_to_nsd "$zone" "$a" >"$d/$a.zone"
				printf 'zone:\n  name: %s\n  zonefile: "%s/%s.zone"\n' "$a" "$d" "$a"
			done
		} >"$d/nsd.conf"
		: >"$d/nsd.log"
		nsd -d -c "$d/nsd.conf" >>"$d/nsd.out" 2>&1 &
		SPID=$!
		PIDS+=("$SPID")
		ip_nsd_up() { grep -qs 'nsd started' "$d/nsd.log" || dead "$SPID"; }
		poll 200 ip_nsd_up
		alive "$SPID" && grep -qs 'nsd started' "$d/nsd.log" && return 0
		ip_stop_tree "$SPID"
	done
	PORT=
	cat "$d/nsd.log" "$d/nsd.out" >&2
}

# ip_start_dnsmasq DIR ZONE: dnsmasq on 127.0.0.1, a free port, in the
# foreground (-k), as the user running the tests.  Sets SPID, PORT.
ip_start_dnsmasq() {
	local d=$1 zone=$2 try
	mkdir -p "$d"
	ip_zone_to_dnsmasq "$zone" >"$d/dnsmasq.conf"
	for try in 1 2 3 4 5; do
		PORT=$(ip_free_port) || return 1
		: >"$d/dnsmasq.log"
		dnsmasq -k -C "$d/dnsmasq.conf" --port="$PORT" --listen-address=127.0.0.1 --bind-interfaces \
			--user="$(id -un)" --group="$(id -gn)" --pid-file="$d/dnsmasq.pid" \
			--log-facility="$d/dnsmasq.log" --log-queries >>"$d/dnsmasq.out" 2>&1 &
		SPID=$!
		PIDS+=("$SPID")
		ip_dnsmasq_up() { grep -qs 'using only locally-known' "$d/dnsmasq.log" || dead "$SPID"; }
		poll 200 ip_dnsmasq_up
		alive "$SPID" && return 0
		stop_pid "$SPID"
	done
	PORT=
	cat "$d/dnsmasq.log" "$d/dnsmasq.out" >&2
}

# ip_mx_wire_order SERVER PORT NAME: the MX preferences in the order the
# server puts them into its answer (over TCP), one line.  Python does the
# parsing so the check does not depend on the code under test.
ip_mx_wire_order() {
	"$PY" - "$@" <<'EOF'
import socket, struct, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
q = struct.pack(">HHHHHH", 4711, 0, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 15, 1)
s = socket.create_connection((host, port), timeout=5)
s.sendall(struct.pack(">H", len(q)) + q)
buf = b""
while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
m = buf[2:]
def skip_name(o):
    while m[o]:
        if m[o] >= 0xC0:
            return o + 2
        o += 1 + m[o]
    return o + 1
an = struct.unpack(">H", m[6:8])[0]
o = skip_name(12) + 4
prefs = []
for _ in range(an):
    o = skip_name(o)
    rtype, _, _, rdlen = struct.unpack(">HHIH", m[o:o + 10])
    if rtype == 15:
        prefs.append(str(struct.unpack(">H", m[o + 10:o + 12])[0]))
    o += 10 + rdlen
print(" ".join(prefs))
EOF
}

# ---- DNS: NSD and dnsmasq ------------------------------------------------------------

# ip_routes DNS NAME...: smtp_send -M for each name, with its exit status.
ip_routes() {
	local dns=$1 n; shift
	for n in "$@"; do
		"$SEND" -R "$dns" -T 3 -M "$n" 2>&1
		echo "exit $?"
	done
}

t_interop_dns() {
	local d=$T/ipdns zone names expect server dns out
	mkdir -p "$d"
	zone=$d/zone
	interop_zone >"$zone"
	start_dnsd ipdns/dnsd <"$zone"
	# every name with a record, and two that do not exist
	names=$(ip_zone_records "$zone" | awk '{ print $1 }' | sort -u)
	names="$names nosuch.example.org nosuch.example.net"
	ip_routes "$DNS" $names >"$d/dnsd.routes"
	local big_best="route to big.example.org
  MX records of big.example.org, best first:"
	local p
	for ((p = 11; p <= 26; p++)); do big_best="$big_best
    $p mx$p.example.org: 127.0.1.$p"; done
	# the route the tests expect, whoever answers
	expect="route to chain.example.org
  chain.example.org is an alias (CNAME) for cs.example.net
  cs.example.net is an alias (CNAME) for example.net
  MX records of example.net, best first:
    10 mx1.example.net: 127.0.0.3
    20 mx2.example.net: 127.0.0.4
exit 0
route to printer.example.org
  printer.example.org has no MX records: the domain itself is the mail exchanger (implicit MX, RFC 5321 5.1)
    0 printer.example.org: 127.0.0.2
exit 0
route to nomail.example.org
  domain nomail.example.org accepts no mail (null MX, RFC 7505)
  -> permanent failure (5.1.10)
exit 69
route to nosuch.example.net
  domain nosuch.example.net does not exist (NXDOMAIN)
  -> permanent failure (5.1.2)
exit 68"
	for server in NSD dnsmasq; do
		if [ $server = NSD ]; then
			ip_peer NSD nsd nsd || continue
			ip_start_nsd "$d/nsd" "$zone"
		else
			ip_peer dnsmasq dnsmasq-base dnsmasq || continue
			ip_start_dnsmasq "$d/dnsmasq" "$zone"
		fi
		NSPID=$SPID
		if [ -z "$PORT" ]; then
			not_ok "$server: did not start"
			continue
		fi
		dns=127.0.0.1:$PORT
		ip_routes "$dns" $names >"$d/$server.routes"
		check "$server: smtp_send -M gives tests/dnsd's route for all $(echo $names | wc -w) names" "" \
			"$(diff "$d/dnsd.routes" "$d/$server.routes")"
		check "$server: CNAME chain, MX preferences, implicit MX, null MX, NXDOMAIN" "$expect" \
			"$(ip_routes "$dns" chain.example.org printer.example.org nomail.example.org nosuch.example.net)"
		out=$("$SEND" -v -R "$dns" -T 3 -M big.example.org 2>&1 >/dev/null | grep -c 'big.example.org MX: truncated over UDP, asking again over TCP')
		check "$server: 40 MX records do not fit into UDP: truncated, asked again over TCP" "1" "$out"
		if [ -x "$PY" ]; then
			check "$server: lists the 40 MX records worst first (as the tests need)" \
				"$(seq 50 -1 11 | tr '\n' ' ' | sed 's/ $//')" "$(ip_mx_wire_order 127.0.0.1 "${dns#*:}" big.example.org)"
		fi
		# issue 9 point 4: sort all MX records, then keep the best 16
		check "$server: of 40 MX records listed worst first, -M keeps the best 16" "$big_best
exit 0" "$(ip_routes "$dns" big.example.org | grep -E '^(route|  MX records|    [0-9]+ |exit)')"
		# a delivery: bob@cs.example.net, through the CNAME to mx1.example.net
		rm -rf "$d/smtpd"
		start_smtpd ipdns/smtpd -a 127.0.0.3 -m mail -d example.net -d cs.example.net
		mkdir -p "$T/ipdns/smtpd/mail/bob"
		printf 'Subject: via %s\r\n\r\nresolved by %s\r\n' "$server" "$server" |
			"$SEND" -R "$dns" -T 5 -P "$PORT" -f alice@example.org bob@cs.example.net 2>"$d/$server.send"
		out=$?
		check "$server: a message to bob@cs.example.net arrives at mx1.example.net" "0|1|resolved by $server" \
			"$out|$(count_files "$T/ipdns/smtpd/mail/bob/new")|$(tail -n 1 "$(only_file "$T/ipdns/smtpd/mail/bob/new")" | tr -d '\r')"
		stop_pid "$SPID"
		if [ $server = NSD ]; then ip_stop_tree "$NSPID"; else stop_pid "$NSPID"; fi
	done
	stop_pid "$DPID"
}

# ---- Postfix: as the next hop, and as the sender ----------------------------------------

# shellcheck source=../postfix.sh
. "$TOP/tests/postfix.sh"

# A stored message without the trace headers an MTA puts on top
# (Return-Path, X-Original-To, Delivered-To, Received and their
# continuation lines): what the sender wrote, if nothing was changed.
ip_strip_trace() {
	awk 'top && /^(Return-Path|X-Original-To|Delivered-To|Received):/ { skip = 1; next }
	     top && skip && /^[ \t]/ { next }
	     { top = 0; print }' top=1 "$@"
}
ip_body_of() { sed '1,/^$/d' "$@"; }       # after the first empty line
# smtp_send's word for a recipient the next server took: "sent" since
# issue 11 (as Postfix's status=sent), "delivered" before
ip_sent_words() { sed 's/^\(smtp_send: <[^>]*>\) delivered relay=/\1 sent relay=/' "$@"; }
ip_since() { tail -n +"$(($2 + 1))" "$1"; }  # ip_since FILE LINES: lines after the first LINES
ip_lines() { wc -l <"$1" | tr -d ' '; }

# pf_files USER: Postfix's stored messages for USER@pf.test
pf_files() { find "$PF/mail/$1/new" -type f 2>/dev/null; }
pf_count() { pf_files "$1" | wc -l | tr -d ' '; }

# A message that tests what relaying can break: dots at line starts,
# 8-bit text, an empty line, a 990-octet line, CRLF throughout.
interop_message() {
	printf 'From: Carol <carol@ours.test>\r\nTo: alice@pf.test\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n'
	printf 'Message-ID: <%s@ours.test>\r\nSubject: %s\r\n\r\n' "$1" "$1"
	printf '.\r\n..\r\n...three\r\n.leading dot\r\n\r\nGr\xc3\xbc\xc3\x9fe, \xe4\xbd\xa0\xe5\xa5\xbd \xff\r\n\tindented\r\n'
	printf '%0990d\r\nlast line\r\n' 7
}

t_interop_postfix() {
	ip_peer Postfix postfix postfix "$PF_MASTER" || return
	if [ "$(id -u)" != 0 ]; then
		skip "interop: a private Postfix instance needs root (its daemons run as user postfix): skipped"
		return
	fi
	local d=$T/ippf out rc f mark try ours
	mkdir -p "$d"
	chmod 711 "$T"          # the postfix user walks down to its queue in $T
	start_smtpd ippf/smtpd -n ours.test -m mail -q queue -d ours.test
	ours=$PORT; OURS_PID=$SPID
	mkdir -p "$d/smtpd/mail/bob" "$d/smtpd/mail/carol" "$d/smtpd/mail/dave"
	PF=$d/postfix
	for try in 1 2 3 4 5; do
		PF_PORT=$(ip_free_port)
		rm -rf "$PF"
		pf_config "$PF" "$PF_PORT" "relayhost = [127.0.0.1]:$ours" \
			"smtpd_recipient_limit = 4" "message_size_limit = 100000" \
			"smtpd_recipient_restrictions = check_recipient_access texthash:$PF/etc/access"
		echo 'busy@pf.test 450 4.2.1 mailbox busy, try later' >"$PF/etc/access"
		chmod 644 "$PF/etc/access"
		if pf_start "$PF"; then break; fi
		[ -z "$PF_PID" ] || pf_stop "$PF_PID"
		PF_PID=
	done
	if [ -z "$PF_PID" ]; then
		not_ok "Postfix: the private instance did not start" "$(cat "$PF/check.log" "$PF/master.log" "$PF/maillog" 2>/dev/null)"
		stop_pid "$OURS_PID"
		return
	fi
	PIDS+=("$PF_PID")
	local pf=127.0.0.1:$PF_PORT

	# 1. next hop: what Postfix stores is what we sent
	interop_message direct >"$d/m1"
	"$SEND" -H client.test -f carol@ours.test -S "$pf" alice@pf.test <"$d/m1" 2>"$d/m1.err"; rc=$?
	poll 200 test "$(pf_count alice)" = 1
	check "Postfix next hop: sent, exit 0" "0|1" "$rc|$(grep -cE '<alice@pf.test> (delivered|sent) ' "$d/m1.err")"
	check "Postfix next hop: it stores our message byte for byte (under its trace headers)" \
		"$(tr -d '\r' <"$d/m1" | od -c)" "$(ip_strip_trace "$(pf_files alice)" | od -c)"

	# 2. a 4xx and a 5xx recipient among good ones
	printf 'Subject: codes\r\n\r\nthree recipients\r\n' |
		"$SEND" -H client.test -f carol@ours.test -S "$pf" bob@pf.test busy@pf.test nobody@pf.test 2>"$d/m2.err"; rc=$?
	check "Postfix next hop: 250, 450 and 550 recipients; exit 69 (a permanent failure wins)" \
"69
smtp_send: <bob@pf.test> sent relay=127.0.0.1[127.0.0.1]:P reply=\"250 2.0.0 Ok: queued as ID\"
smtp_send: <busy@pf.test> deferred relay=127.0.0.1[127.0.0.1]:P reply=\"450 4.2.1 <busy@pf.test>: Recipient address rejected: mailbox busy, try later\"
smtp_send: <nobody@pf.test> failed relay=127.0.0.1[127.0.0.1]:P reply=\"550 5.1.1 <nobody@pf.test>: Recipient address rejected: User unknown in virtual mailbox table\"" \
		"$rc
$(ip_sent_words "$d/m2.err" | sed -e "s/:$PF_PORT /:P /" -e 's/queued as [^"]*/queued as ID/')"

	# 3. smtpd_recipient_limit = 4, and six recipients.  Issue 9 point 10:
	# the 452 ones go in a second transaction on the same connection.
	mark=$(ip_lines "$PF/maillog")
	printf 'Subject: limit\r\n\r\nsix recipients\r\n' |
		"$SEND" -H client.test -f carol@ours.test -S "$pf" alice@pf.test bob@pf.test carol@pf.test \
			dave@pf.test erin@pf.test frank@pf.test 2>"$d/m3.err"; rc=$?
	check "Postfix next hop: recipient limit 4 (452), six recipients: all delivered over one connection" "0|6|1" \
		"$rc|$(grep -cE '> (delivered|sent) ' "$d/m3.err")|$(ip_since "$PF/maillog" "$mark" | grep -c 'smtpd.*: connect from')"

	# 4. over message_size_limit: Postfix's EHLO says SIZE 100000, so
	# the message is not offered at all (RFC 1870 7): a permanent
	# failure, and Postfix's disconnect line counts no MAIL command
	{ printf 'Subject: too big\r\n\r\n'; for ((f = 0; f < 2500; f++)); do printf '%060d\r\n' "$f"; done; } >"$d/m4"
	mark=$(ip_lines "$PF/maillog")
	"$SEND" -H client.test -f carol@ours.test -S "$pf" alice@pf.test <"$d/m4" 2>"$d/m4.err"; rc=$?
	pf_logged() { ip_since "$PF/maillog" "$1" | grep -q "$2"; }
	poll 100 pf_logged "$mark" 'disconnect from'
	check "Postfix next hop: a message over message_size_limit (its SIZE) fails (552 5.3.4), exit 69, no MAIL sent" \
		"69|smtp_send: <alice@pf.test> failed relay=127.0.0.1[127.0.0.1]:P reply=\"552 5.3.4 message size N exceeds the server's limit of 100000 (SIZE)\"|ehlo=1 quit=1 commands=2" \
		"$rc|$(sed -e "s/:$PF_PORT /:P /" -e 's/message size [0-9]* /message size N /' "$d/m4.err")|$(ip_since "$PF/maillog" "$mark" | grep -o 'disconnect from .*' | grep -o 'ehlo=.*')"

	# 5. the queue: smtpd queues, smtp_send -q relays to Postfix; the
	# 550 becomes a bounce that Postfix accepts for the sender; the 450
	# stays queued
	out=$(printf 'EHLO c\nMAIL FROM:<heidi@pf.test>\nRCPT TO:<grace@pf.test>\nRCPT TO:<busy@pf.test>\nRCPT TO:<nobody@pf.test>\nDATA\n%s\n.\nQUIT\n' \
		"$(interop_message queued | tr -d '\r' | sed 's/^\./../')" | smtp "$ours" | norm)
	check "Postfix next hop, -q: smtpd queues the message for pf.test" "250 2.0.0|1" \
		"$(echo "$out" | grep -o '250 2.0.0' | head -n 1)|$(count_files "$d/smtpd/queue/entries")"
	"$SEND" -q "$d/smtpd/queue" -F -H ours.test -S "$pf" 2>"$d/q.err"; rc=$?
	poll 200 test "$(pf_count grace)$(pf_count heidi)" = 11
	check "Postfix next hop, -q: delivered, bounced, deferred (exit 75); one entry left" "75|1|1|1" \
		"$rc|$(pf_count grace)|$(pf_count heidi)|$(count_files "$d/smtpd/queue/entries")"
	check "Postfix next hop, -q: the relayed body is byte for byte ours" \
		"$(interop_message queued | tr -d '\r' | ip_body_of | od -c)" "$(ip_body_of "$(pf_files grace)" | od -c)"
	f=$(pf_files heidi)
	check "Postfix next hop, -q: it takes our bounce (null sender) for the 550" \
		"Return-Path: <>|1|1" \
		"$(head -n 1 "$f")|$(grep -c '^Final-Recipient: rfc822; nobody@pf.test' "$f")|$(grep -c '^Status: 5.1.1' "$f")"

	# 6. Postfix as the sender: it relays to our smtpd (relayhost)
	interop_message relayed >"$d/m6"
	mark=$(ip_lines "$PF/maillog")
	"$SEND" -H client.test -f alice@pf.test -S "$pf" bob@ours.test carol@ours.test dave@ours.test <"$d/m6" 2>"$d/m6.err"
	local got
	ip_postfix_relayed() { [ "$(ip_since "$PF/maillog" "$mark" | grep -c 'status=sent')" -ge 3 ]; }
	poll 400 ip_postfix_relayed
	got=$(for f in bob carol dave; do count_files "$d/smtpd/mail/$f/new"; done | tr '\n' ' ')
	check "Postfix as sender: three recipients, each copy in our Maildir" "1 1 1 " "$got"
	check "Postfix as sender: 8-bit and dot-stuffed body arrives exactly" \
		"$(tr -d '\r' <"$d/m6" | ip_body_of | od -c)" "$(ip_body_of "$(only_file "$d/smtpd/mail/dave/new")" | od -c)"
	check "Postfix as sender: its log says status=sent to us for each" "3" \
		"$(ip_since "$PF/maillog" "$mark" | grep -cE "to=<(bob|carol|dave)@ours.test>, relay=127.0.0.1\[127.0.0.1\]:$ours, .*status=sent \(250 2.0.0 ")"

	pf_stop "$PF_PID"
	check "Postfix: the private instance is stopped: no master, no daemon, nothing listening" "0|0|0" \
		"$(alive "$PF_PID" && echo 1 || echo 0)|$(pf_procs "$PF")|$(pf_listening "$PF_PORT" && echo 1 || echo 0)"
	stop_pid "$OURS_PID"
}

# ---- clients of smtpd: swaks, Python's smtplib, curl ------------------------------------

# swaks with a deadline and no terminal: it prompts for what it misses.
ip_swaks_run() { timeout 60 swaks "$@" </dev/null; }

t_interop_clients() {
	local d=$T/ipcli out rc u f n
	mkdir -p "$d"
	start_smtpd ipcli/smtpd -n ours.test -m mail -d ours.test
	local port=$PORT pid=$SPID
	for u in ann ben cid dan eve fay gus; do mkdir -p "$d/smtpd/mail/$u"; done
	interop_message client >"$d/m"
	tr -d '\r' <"$d/m" >"$d/m.lf"

	if ip_peer swaks swaks swaks; then
		# pipelined, 8-bit: swaks sends MAIL, RCPT, RCPT, DATA in one go
		# (swaks ends the data with CRLF . CRLF itself: no last newline in its file)
		head -c -1 "$d/m.lf" >"$d/m.swaks"
		ip_swaks_run --server 127.0.0.1 --port "$port" --helo swaks.test --from a@swaks.test \
			--to ann@ours.test,ben@ours.test --pipeline --data @"$d/m.swaks" >"$d/swaks1" 2>&1; rc=$?
		check "swaks: PIPELINING and 8BITMIME offered, the pipelined transaction accepted" "0|1|1|1" \
			"$rc|$(grep -c '^<-  250-PIPELINING' "$d/swaks1")|$(grep -c '^<-  250-8BITMIME' "$d/swaks1")|$(grep -cE '^<-  250 2\.0\.0 Ok: (queued|stored) as' "$d/swaks1")"
		check "swaks: MAIL, RCPT, RCPT, DATA sent before the first reply (PIPELINING)" \
			" -> MAIL FROM:<a@swaks.test>| -> RCPT TO:<ann@ours.test>| -> RCPT TO:<ben@ours.test>| -> DATA|<-  250 2.1.0|<-  250 2.1.5|<-  250 2.1.5|<-  354" \
			"$(grep -E '^( -> (MAIL|RCPT|DATA)|<-  (250 2\.1|354 ))' "$d/swaks1" | sed -E 's/^(<-  [0-9]{3}( [0-9.]+)?).*/\1/' | tr -d '\r' | tr '\n' '|' | sed 's/|$//')"
		check "swaks: the 8-bit, dot-stuffed body stored exactly, for both recipients" "1 1|$(ip_body_of "$d/m.lf" | od -c)" \
			"$(count_files "$d/smtpd/mail/ann/new") $(count_files "$d/smtpd/mail/ben/new")|$(ip_body_of "$(only_file "$d/smtpd/mail/ben/new")" | od -c)"
		# a body of 1 MB
		{ printf 'Subject: one megabyte\n\n'; for ((n = 0; n < 16384; n++)); do printf '\n%063d' "$n"; done; } >"$d/big"
		ip_swaks_run --server 127.0.0.1 --port "$port" --helo swaks.test --from a@swaks.test \
			--to cid@ours.test --data @"$d/big" --suppress-data >"$d/swaks2" 2>&1; rc=$?
		check "swaks: a 1 MB body stored exactly" "0|$( (ip_body_of "$d/big"; echo) | cksum)" \
			"$rc|$(ip_body_of "$(only_file "$d/smtpd/mail/cid/new")" | cksum)"
		# --quit-after each step: QUIT is answered 221, nothing is stored
		out=
		for n in CONNECT FIRST-HELO HELO MAIL RCPT; do
			ip_swaks_run --server 127.0.0.1 --port "$port" --helo swaks.test --from a@swaks.test \
				--to dan@ours.test --quit-after "$n" >"$d/quit.$n" 2>&1; rc=$?
			out="$out$n:$rc:$(grep -E '^( -> QUIT|<-  221 )' "$d/quit.$n" | tr -d '\r' | tr '\n' '/') "
		done
		check "swaks --quit-after each step: QUIT, 221, exit 0, nothing stored" \
			"CONNECT:0: -> QUIT/<-  221 2.0.0 ours.test closing connection/ FIRST-HELO:0: -> QUIT/<-  221 2.0.0 ours.test closing connection/ HELO:0: -> QUIT/<-  221 2.0.0 ours.test closing connection/ MAIL:0: -> QUIT/<-  221 2.0.0 ours.test closing connection/ RCPT:0: -> QUIT/<-  221 2.0.0 ours.test closing connection/ |0" \
			"$out|$(count_files "$d/smtpd/mail/dan/new")"
	fi

	if ip_peer "Python smtplib" python3 "$PY"; then
		out=$("$PY" - "$port" "$d/m.lf" <<'PYEOF'
import email, email.policy, smtplib, sys
port, path = int(sys.argv[1]), sys.argv[2]
with smtplib.SMTP("127.0.0.1", port, local_hostname="python.test", timeout=20) as s:
    msg = email.message_from_binary_file(open(path, "rb"), policy=email.policy.SMTP)
    del msg["To"]
    msg["To"] = "eve@ours.test"
    print("send_message:", s.send_message(msg, from_addr="p@python.test"))
    refused = s.sendmail("p@python.test", ["fay@ours.test", "nobody@ours.test", "gus@ours.test"],
                         b"Subject: mixed\r\n\r\none bad recipient among good ones\r\n")
    print("sendmail refused:", refused)
PYEOF
		); rc=$?
		check "Python smtplib: send_message, then sendmail with a bad recipient among good ones" \
			"0|send_message: {}
sendmail refused: {'nobody@ours.test': (550, b'5.1.1 <nobody@ours.test>: User unknown')}" "$rc|$out"
		check "Python smtplib: the good recipients got their copies, the body exact" \
			"1 1 1|$(ip_body_of "$d/m.lf" | od -c)" \
			"$(count_files "$d/smtpd/mail/eve/new") $(count_files "$d/smtpd/mail/fay/new") $(count_files "$d/smtpd/mail/gus/new")|$(ip_body_of "$(only_file "$d/smtpd/mail/eve/new")" | od -c)"
	fi

	if ip_peer curl curl curl; then
		rm -rf "$d/smtpd/mail/ann/new"/*
		curl -sS --max-time 20 --url "smtp://127.0.0.1:$port/curl.test" --mail-from c@curl.test \
			--mail-rcpt ann@ours.test --upload-file "$d/m" >"$d/curl1" 2>&1; rc=$?
		check "curl smtp://: exit 0, the message stored exactly" "0|$(ip_body_of "$d/m.lf" | od -c)" \
			"$rc|$(ip_body_of "$(only_file "$d/smtpd/mail/ann/new")" | od -c)"
		curl -sS --max-time 20 --url "smtp://127.0.0.1:$port/curl.test" --mail-from c@curl.test \
			--mail-rcpt nobody@ours.test --upload-file "$d/m" >"$d/curl2" 2>&1; rc=$?
		check "curl smtp://: a refused recipient is curl's error 55, nothing sent" "55|curl: (55) RCPT failed: 550" "$rc|$(cat "$d/curl2")"
	fi
	stop_pid "$pid"
}

# ---- readers of our Maildirs: Python's mailbox, mblaze -------------------------------------

# Read every message in the Maildirs given with Python's mailbox.Maildir
# and its email parser (policy "default", the strict one); print one line
# per defect, then "N messages, B bounces".
ip_maildir_defects() {
	"$PY" - "$@" <<'PYEOF'
import email, email.policy, mailbox, sys
n = bounces = 0
for path in sys.argv[1:]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in box.iterkeys():
        m = box.get_message(key)                  # MaildirMessage
        if m.get_subdir() != "new":
            print(path, key, "not in new/")
        msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        n += 1
        if msg.get_content_type() == "multipart/report":
            bounces += 1
        for part in msg.walk():
            for d in part.defects:
                print(path, key, part.get_content_type(), type(d).__name__, d)
            for name, value in part.items():
                for d in getattr(value, "defects", ()):
                    print(path, key, name, type(d).__name__, d)
            if part.get_content_type() == "message/delivery-status":
                for block in part.get_payload():
                    for d in block.defects:
                        print(path, key, "delivery-status", type(d).__name__, d)
print(n, "messages,", bounces, "bounces")
PYEOF
}

t_interop_readers() {
	local d=$T/iprd out rc dirs f n
	mkdir -p "$d"
	# two domains on one port: ours.test (127.0.0.21) queues, far.test
	# (127.0.0.22) refuses nobody@, so the queue run bounces to alice
	start_dnsd iprd/dns <<'ZONE'
ours.test     MX 10 mx.ours.test
mx.ours.test  A  127.0.0.21
far.test      MX 10 mx.far.test
mx.far.test   A  127.0.0.22
ZONE
	start_smtpd iprd/smtpd1 -a 127.0.0.21 -n mx.ours.test -m mail -q queue -d ours.test
	local p=$PORT ours=$SPID
	start_smtpd iprd/smtpd2 -a 127.0.0.22 -p "$p" -n mx.far.test -m mail -d far.test
	local far=$SPID
	mkdir -p "$d/smtpd1/mail/alice" "$d/smtpd2/mail/carol"
	{ printf 'EHLO c\nMAIL FROM:<alice@ours.test>\nRCPT TO:<carol@far.test>\nRCPT TO:<nobody@far.test>\nDATA\n'
	  interop_message readers | tr -d '\r' | sed 's/^\./../'
	  printf '.\nMAIL FROM:<carol@far.test>\nRCPT TO:<alice@ours.test>\nDATA\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\nFrom: carol@far.test\n\nplain\n.\nQUIT\n'; } |
		SMTP_HOST=127.0.0.21 smtp "$p" >/dev/null
	"$SEND" -q "$d/smtpd1/queue" -R "$DNS" -P "$p" -H mx.ours.test 2>"$d/q.err"; rc=$?
	check "readers: the queue run delivers one copy and bounces one to alice" "0|1|2" \
		"$rc|$(count_files "$d/smtpd2/mail/carol/new")|$(count_files "$d/smtpd1/mail/alice/new")"
	stop_pid "$ours"; stop_pid "$far"; stop_pid "$DPID"

	# every Maildir our smtpd delivered to in the interop groups that ran
	dirs=$(find "$T" -path "$T/ip*/smtpd*/mail/*/new" -maxdepth 5 -mindepth 5 -type d | sed 's|/new$||' | sort)
	n=$(for f in $dirs; do count_files "$f/new"; done | awk '{ s += $1 } END { print s }')
	if ip_peer "Python mailbox" python3 "$PY"; then
		out=$(ip_maildir_defects $dirs 2>&1)
		check "Python mailbox.Maildir reads all $n stored messages, bounces included, without a defect" \
			"$n messages, $(grep -l '^Content-Type: multipart/report' $(for f in $dirs; do find "$f/new" -type f; done) | wc -l | tr -d ' ') bounces" "$out"
	fi
	if ip_peer mblaze mblaze mlist mshow; then
		# mblaze's state (sequence, current message) in the test, not in ~/.mblaze
		local -x MBLAZE=$d/mblaze
		mkdir -p "$MBLAZE"
		: >"$MBLAZE/seq"
		check "mblaze: mlist lists all $n messages" "$n" "$(mlist $dirs | wc -l | tr -d ' ')"
		out=$(mlist $dirs | while read -r f; do mshow "$f" >/dev/null 2>"$d/mshow.err" || echo "$f: exit $?"; [ -s "$d/mshow.err" ] && cat "$d/mshow.err"; done)
		check "mblaze: mshow shows every message without a complaint" "" "$out"
		f=$(grep -l '^Content-Type: multipart/report' "$d/smtpd1/mail/alice/new"/*)
		check "mblaze: the bounce's MIME structure (RFC 6522 report)" "1: multipart/report
2: text/plain
3: message/delivery-status
4: text/rfc822-headers" "$(mshow -t "$f" | grep -E '^ *[0-9]+:' | sed -E 's/^ *//; s/ size=.*//')"
		check "mblaze: an RFC 2047 subject decodes" "Subject: Grüße" "$(mshow -q "$(grep -l '^From: carol' "$d/smtpd1/mail/alice/new"/*)" | grep '^Subject:')"
	fi
}

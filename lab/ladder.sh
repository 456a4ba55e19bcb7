#!/bin/sh
# lab/ladder.sh - a lab run drawn as a ladder (sequence) diagram.
#
#   lab/ladder.sh [-n] [lab-dir]   [lab/run, or $LAB_DIR]
#   lab/ladder.sh --demo [--update]
#
# -n writes message ids as <id> and SIZE=<n>, which change from run to
# run.  --demo runs make demo's journey in a scratch lab (free ports) and
# prints its ladder with -n; --update also writes it into NOTES.md between
# the ladder:begin/end markers (test.sh checks that NOTES holds the ladder
# the demo draws today).
#
# One column per actor: alice's laptop, mail.example.org, the DNS server,
# mx1.example.net, mx2.example.net; time flows down.  One arrow per SMTP
# command, per reply (a multi-line reply is one arrow), per DNS question
# and answer, per TCP connection; an X is a connection that was refused.
# Commands sent in one write (PIPELINING, RFC 2920) are bracketed as one
# batch, and so are the replies to them.  The message itself (everything
# between 354 and the final ".") is one arrow.
#
# Where it reads from, all written by the lab:
#   lab-dir/client/*.log  smtp_send -v output, in name order (the demo
#                         keeps its there; keep your own with
#                         ... 2>&1 | tee lab/run/client/NAME.log).
#                         They alone show DNS questions, refused
#                         connections and pipelined batches.
#   lab-dir/HOST/log      smtpd -v logs of mail, mx1 and mx2: every session
#                         a server saw.  A session found in both (the same
#                         C: lines) is drawn once, from the client's side.
# Sessions are put in time order by their session id (smtpd's sid is the
# second in hex, then the pid); a client transcript's DNS questions and
# refused connections go just before its next session.  Nothing is drawn
# by hand: the picture is only what the logs say.
LAB=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$LAB")
if [ "${1:-}" = --demo ]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/smtp-ladder.XXXXXX") || exit 1
	trap 'rm -rf "$dir"' EXIT
	LAB_DIR=$dir LAB_PORT=0 LAB_DNS_PORT=0 "$LAB/lab.sh" demo >"$dir/demo.out" 2>&1 ||
		{ cat "$dir/demo.out" >&2; exit 1; }
	out=$("$0" -n "$dir") || exit 1
	printf '%s\n' "$out"
	if [ "${2:-}" = --update ]; then
		awk -v block="$out" '
			/<!-- ladder:begin -->/ { print; print "```"; print block; print "```"; skip = 1; next }
			/<!-- ladder:end -->/   { skip = 0 }
			!skip { print }' "$TOP/NOTES.md" >"$TOP/NOTES.md.new" && mv "$TOP/NOTES.md.new" "$TOP/NOTES.md"
	fi
	exit 0
fi
norm=
if [ "${1:-}" = -n ]; then
	norm=1
	shift
fi
normalize() {
	if [ -n "$norm" ]; then
		sed -E -e 's/ as [0-9]+[.]M[0-9]+P[0-9]+Q[0-9]+/ as <id>/' -e 's/SIZE=[0-9]+/SIZE=<n>/'
	else
		cat
	fi
}
RUN=${1:-${LAB_DIR:-$LAB/run}}
[ -d "$RUN" ] || { echo "ladder: no lab run in $RUN" >&2; exit 1; }

clients=$(ls "$RUN"/client/*.log 2>/dev/null)
servers=
for h in mail mx1 mx2; do
	[ -f "$RUN/$h/log" ] && servers="$servers $RUN/$h/log"
done
[ -n "$clients$servers" ] || { echo "ladder: no logs in $RUN" >&2; exit 1; }

# shellcheck disable=SC2086
awk -v nclient="$(printf '%s\n' $clients | grep -c .)" '
function colof_name(n) {   # a host name (EHLO argument) to its column
	n = tolower(n)
	if (n == "mail.example.org") return 1
	if (n == "mx1.example.net") return 3
	if (n == "mx2.example.net") return 4
	return 0
}
function colof_ip(ip) {
	if (ip == "127.0.0.2") return 1
	if (ip == "127.0.0.1") return 2
	if (ip == "127.0.0.3") return 3
	if (ip == "127.0.0.4") return 4
	return -1
}
function hex(s,    i, v, c) {
	v = 0
	for (i = 1; i <= length(s); i++) {
		c = index("0123456789abcdef", tolower(substr(s, i, 1)))
		if (c == 0) return 0
		v = v * 16 + c - 1
	}
	return v
}
function trunc(s, n) { return length(s) > n ? substr(s, 1, n - 3) "..." : s }

# ---- drawing --------------------------------------------------------------
# One row: the lifelines, an arrow from column "from" to column "to" (none
# when from < 0), then the gutter (batch bracket) and the label.
function row(from, to, kind, label, gutter,    i, s, a, b, x, ch) {
	for (i = 0; i < W * 5; i++) ch[i] = (i % W == L) ? "|" : " "
	if (from >= 0 && to >= 0 && from != to) {
		a = (from < to ? from : to) * W + L
		b = (from < to ? to : from) * W + L
		for (x = a + 1; x < b; x++) ch[x] = "-"
		if (from < to) ch[b - 1] = (kind == "refused") ? "X" : ">"
		else ch[a + 1] = (kind == "refused") ? "X" : "<"
	}
	if (from >= 0 && from == to) {           # a host talking to itself
		a = from * W + L
		ch[a + 1] = "-"; ch[a + 2] = "-"; ch[a + 3] = "."
		label = label " (to itself)"
	}
	s = ""
	for (i = 0; i <= 4 * W + L; i++) s = s ch[i]
	if (label == "") { sub(/ +$/, "", s); print s; return }
	printf "%s %s%s\n", s, gutter, trunc(label, 72)
}
function header() {
	printf "%-" W "s%-" W "s%-" W "s%-" W "s%s\n", "alice'"'"'s", "mail.", "DNS", "mx1.", "mx2."
	printf "%-" W "s%-" W "s%-" W "s%-" W "s%s\n", "laptop", "example.org", "127.0.0.1", "example.net", "example.net"
	row(-1, -1, "", "")
}

# Arrows wait in pend[] until the direction changes, so that a batch
# (several commands in one write, or the replies to them) is drawn
# bracketed together.
function flush(   i, g, note) {
	for (i = 1; i <= np; i++) {
		g = np == 1 ? "  " : (i == 1 || i == np) ? "+ " : "| "
		note = ""
		if (np > 1 && i == np) note = pkind == "cmd" ? "   (one batch: PIPELINING)" : "   (their replies, in order)"
		row(pfrom, pto, "", pend[i] note, g)
	}
	np = 0
}
function add(from, to, label, kind) {
	if (np > 0 && !(kind != "" && pkind == kind && pfrom == from && pto == to)) flush()
	if (np == 0) { pfrom = from; pto = to; pkind = kind }
	pend[++np] = label
	if (kind == "") flush()
}

# One dialogue line (C: or S:) of a session between columns cl and sv.
# batch: consecutive commands (or replies) may form one batch; only a
# client transcript shows batches, a server log shows each line alone.
# A multi-line reply is one arrow; the message is one arrow.
function dialogue(t, cl, sv, batch,    code, w) {
	if (substr(t, 1, 3) == "C: ") {
		t = substr(t, 4)
		if (indata) {
			if (t == ".") {
				add(cl, sv, "the message, " ndata " lines, then \".\"", "")
				indata = 0
			} else ndata++
			return
		}
		add(cl, sv, t, batch ? "cmd" : "")
		return
	}
	if (substr(t, 1, 3) != "S: ") return
	t = substr(t, 4)
	code = substr(t, 1, 3)
	if (rtext == "") rtext = t
	else { w = substr(t, 5); sub(/ .*/, "", w); rext = rext " " w }   # an extension keyword
	if (substr(t, 4, 1) == "-") return          # more lines of this reply follow
	if (rext != "") { w = substr(rtext, 5); sub(/ .*/, "", w); rtext = code " " w ":" rext }
	add(sv, cl, rtext, batch ? "reply" : "")
	if (code == "354") { indata = 1; ndata = 0 }
	rtext = rext = ""
}
function new_session() { indata = 0; rtext = rext = ""; lastcmd = "" }

# A whole server-side session i.
function draw_server(i,   j, cl, sv) {
	cl = ss_client[i]; sv = ss_col[i]
	new_session()
	add(cl, sv, "connect (TCP, " ss_addr[i] ")", "")
	for (j = 1; j <= ss_n[i]; j++) dialogue(ss_line[i, j], cl, sv, 0)
	flush()
}

# Client events of file f, from its cursor up to event e (inclusive).
function draw_client(f, e,    k, t, actor, dst, m, ip) {
	actor = cf_actor[f]
	for (k = cur[f]; k <= e; k++) {
		t = ce[f, k]
		if (t ~ /^dns: .* -> /) {
			m = t; sub(/^dns: /, "", m)
			q = m; sub(/ -> .*/, "", q)
			a = m; sub(/.* -> /, "", a); sub(/ from [^ ]*$/, "", a)
			if (a ~ /^ok \(1 records\)$/) a = "ok, 1 record"
			else if (a ~ /^ok \(/) { sub(/^ok \(/, "ok, ", a); sub(/\)$/, "", a) }
			if (ce[f, k + 1] ~ /^dns: .* is an alias \(CNAME\) for /) {
				m = ce[f, k + 1]; sub(/.* for /, "", m); a = a ": CNAME " m
			}
			add(actor, 2, q, ""); add(2, actor, a, "")
		} else if (t ~ /^connected to /) {
			ip = t; sub(/^[^[]*\[/, "", ip); sub(/\].*/, "", ip)
			dst = colof_ip(ip); insession = 1
			new_session()
			add(actor, dst, "connect (TCP)", "")
		} else if (t ~ /^could not use it: /) {
			if (!insession) {
				ip = t; sub(/^[^[]*\[/, "", ip); sub(/\].*/, "", ip)
				m = t; sub(/^could not use it: [^ ]*: /, "", m); sub(/; next$/, "", m)
				flush(); row(actor, colof_ip(ip), "refused", m, "  ")
			}
			insession = 0
		} else if (t ~ /^trying /) {
			insession = 0
		} else if (t ~ /^[CS]: / && insession) {
			dialogue(t, actor, dst, 1)
			if (t ~ /^S: 221 / || (t ~ /^S: [0-9][0-9][0-9] / && lastcmd == "QUIT")) insession = 0
			if (t ~ /^C: /) lastcmd = toupper(substr(t, 4))
		}
	}
	flush()
	cur[f] = e + 1
}

BEGIN { W = 12; L = 3 }

# ---- reading --------------------------------------------------------------
FNR == 1 { fi++; isclient = (fi <= nclient); host = FILENAME; sub(/\/log$/, "", host); sub(/.*\//, "", host) }

isclient {
	t = $0; sub(/^smtp_send: /, "", t)
	sub(/^[0-9]+[.]M[0-9]+P[0-9]+Q[0-9]+: /, "", t)    # in a queue run: the entry id
	n = ++cn[fi]; ce[fi, n] = t
	if (cf_actor[fi] == "" && t ~ /^C: (EHLO|HELO) /) { m = t; sub(/^C: [A-Za-z]+ /, "", m); cf_actor[fi] = colof_name(m) }
	if (t ~ /^queue: /) sawqueue[fi] = 1
	if (t ~ /^connected to /) { ns = ++cs_n[fi]; cs_first[fi, ns] = n; cs_key[fi, ns] = "" }
	# smtpd -v logs a TAB in a C: line as \t (it escapes control bytes): compare alike
	if (t ~ /^C: / && cs_n[fi] > 0) { ns = cs_n[fi]; k = t; gsub(/\t/, "\\t", k); cs_key[fi, ns] = cs_key[fi, ns] "\n" k; cs_last[fi, ns] = n }
	if (t ~ /^S: / && cs_n[fi] > 0) cs_last[fi, cs_n[fi]] = n
	next
}

{   # a server log: "smtpd: sid=HEXTIME.PID event..."
	if (match($0, /sid=[^ ]+/) == 0) next
	sid = substr($0, RSTART + 4, RLENGTH - 4)
	rest = substr($0, RSTART + RLENGTH + 1)
	if (rest ~ /^connect /) {
		i = ++nss; sidx[host, sid] = i
		split(sid, p, "."); ss_time[i] = hex(p[1]); ss_pid[i] = p[2] + 0
		ss_col[i] = colof_name(host == "mail" ? "mail.example.org" : host ".example.net")
		ss_client[i] = 0; ss_key[i] = ""; ss_n[i] = 0
		a = rest; sub(/.*client=/, "", a); sub(/ .*/, "", a); ss_addr[i] = "from " a
		next
	}
	if (!((host, sid) in sidx)) next
	i = sidx[host, sid]
	if (rest ~ /^[CS]: /) {
		ss_line[i, ++ss_n[i]] = rest
		if (rest ~ /^C: /) ss_key[i] = ss_key[i] "\n" rest
		if (rest ~ /^C: (EHLO|HELO|ehlo|helo) /) { m = rest; sub(/^C: [A-Za-z]+ /, "", m); ss_client[i] = colof_name(m) }
	}
}

END {
	for (f = 1; f <= nclient; f++) {
		if (cf_actor[f] == "") cf_actor[f] = sawqueue[f] ? 1 : 0
		cur[f] = 1
	}
	# server sessions in time order (insertion sort: a lab run is small)
	for (i = 1; i <= nss; i++) ord[i] = i
	for (i = 2; i <= nss; i++) {
		v = ord[i]
		for (j = i - 1; j >= 1 && (ss_time[ord[j]] > ss_time[v] || (ss_time[ord[j]] == ss_time[v] && ss_pid[ord[j]] > ss_pid[v])); j--)
			ord[j + 1] = ord[j]
		ord[j + 1] = v
	}
	header()
	for (o = 1; o <= nss; o++) {
		i = ord[o]; found = 0
		for (f = 1; f <= nclient && !found; f++)
			for (s = 1; s <= cs_n[f] && !found; s++)
				if (!used[f, s] && cs_key[f, s] == ss_key[i] && cs_first[f, s] >= cur[f]) {
					used[f, s] = 1; found = 1
					draw_client(f, cs_last[f, s])
				}
		if (!found) draw_server(i)
	}
	for (f = 1; f <= nclient; f++) draw_client(f, cn[f])
	if (nclient == 0)
		print "(no client transcripts in client/: DNS questions and refused connections are not shown)"
}
' $clients $servers | normalize

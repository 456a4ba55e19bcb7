#!/usr/bin/env bash
# lab/lab.sh - a small internet on loopback, to watch and poke SMTP.
#
#   lab/lab.sh up                  start DNS and the five mail hosts
#   lab/lab.sh down                stop everything the lab started, say what
#   lab/lab.sh status              what runs, where
#   lab/lab.sh stop HOST           stop one host (mail, mx1, mx2, zh, legacy, old)
#   lab/lab.sh start HOST [opt..]  start it again; extra options go to its
#                                  smtpd, which runs in lab/run/HOST (so
#                                  "-x aliases" is lab/run/HOST/aliases)
#   lab/lab.sh demo                up (without mx1), send alice -> bob,
#                                  explain, draw the ladder, down
#   lab/lab.sh demo-zh             up zh and legacy, send 张三's Chinese
#                                  message to both, explain, down
#
# The hosts (each on its own loopback address, port $LAB_PORT):
#   mail.example.org  127.0.0.2  alice's server (example.org)
#   mx1.example.net   127.0.0.3  example.net's best MX (preference 10)
#   mx2.example.net   127.0.0.4  example.net's backup MX (preference 20)
#   zh                127.0.0.6  mx.xn--fsqu00a.xn--0zwm56d, the server of
#                                例子.测试, with SMTPUTF8 (张三, 李四, and
#                                zhangsan: an ASCII alias of 张三)
#   legacy            127.0.0.7  mx.legacy.example.com, an old server:
#                                smtpd -E SMTPUTF8 -E 8BITMIME (wang)
#   old.example.org   127.0.0.5  an old server without ESMTP (tests/fakesmtp
#                                heloonly); only "start old" starts it
# and tests/dnsd on 127.0.0.1:$LAB_DNS_PORT serving lab/zone.
# Nothing leaves the machine; no root needed.  State, logs and mailboxes
# live in $LAB_DIR (lab/run).  LAB_PORT=0 / LAB_DNS_PORT=0 take free ports.
# The demo keeps its smtp_send -v transcripts in client/ there, which
# lab/ladder.sh draws.
set -u
LAB=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$LAB")
RUN=${LAB_DIR:-$LAB/run}
PORT=${LAB_PORT:-2525}
DNS_PORT=${LAB_DNS_PORT:-10053}
HOSTS="mail mx1 mx2 zh legacy"

addr_of() {
	case $1 in
	mail) echo 127.0.0.2 ;; mx1) echo 127.0.0.3 ;; mx2) echo 127.0.0.4 ;; old) echo 127.0.0.5 ;;
	zh) echo 127.0.0.6 ;; legacy) echo 127.0.0.7 ;;
	esac
}
name_of() {
	case $1 in
	mail) echo mail.example.org ;; mx1) echo mx1.example.net ;; mx2) echo mx2.example.net ;;
	zh) echo mx.xn--fsqu00a.xn--0zwm56d ;; legacy) echo mx.legacy.example.com ;;
	old) echo old.example.org ;; dns) echo "DNS server" ;; *) echo "$1" ;;
	esac
}
# The options of each host's smtpd: its domains, and for legacy the
# extensions it withholds (an old server).  zh's domain is written as a
# U-label, the zone has its A-labels: smtpd takes both as one name.
options_of() {
	case $1 in
	mail) echo "-d example.org" ;;
	zh) echo "-d 例子.测试 -x aliases" ;;
	legacy) echo "-d legacy.example.com -E SMTPUTF8 -E 8BITMIME" ;;
	*) echo "-d example.net -d cs.example.net" ;;
	esac
}
users_of() {
	case $1 in
	mail) echo "alice postmaster" ;; zh) echo "张三 李四 postmaster" ;; legacy) echo "wang postmaster" ;;
	*) echo "bob postmaster" ;;
	esac
}

pid_of() { cat "$RUN/$1/pid" 2>/dev/null; }
# A zombie has exited but still answers kill -0 until its parent reaps it;
# the lab's daemons are orphans, and not every init reaps (a container's
# may not), so "kill -0 works" alone would wait for nothing.
zombie() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case $st in Z*) return 0 ;; *) return 1 ;; esac
}
live() { kill -0 "$1" 2>/dev/null && ! zombie "$1"; }
running() { local p; p=$(pid_of "$1") && [ -n "$p" ] && live "$p"; }
smtp_port() { cat "$RUN/port" 2>/dev/null || echo "$PORT"; }
dns_addr() { echo "127.0.0.1:$(cat "$RUN/dns/port" 2>/dev/null || echo "$DNS_PORT")"; }

# Wait for "listening ... port=N" in a log, after its first SKIP lines
# (a restarted host appends to its log), at most 10 s; print N.
wait_listening() {
	local log=$1 pid=$2 what=$3 skip=${4:-0} i
	for ((i = 0; i < 200; i++)); do
		if tail -n +"$((skip + 1))" "$log" 2>/dev/null | grep -q listening; then
			tail -n +"$((skip + 1))" "$log" | sed -n 's/.*listening.* port=\([0-9]*\).*/\1/p' | head -n 1
			return 0
		fi
		live "$pid" || break
		sleep 0.05
	done
	echo "lab: $what did not start; it said:" >&2
	tail -n +"$((skip + 1))" "$log" | sed 's/^/    /' >&2
	return 1
}

# With LAB_DNS_PORT=0, dnsd takes a free UDP port and then the same TCP
# port, which someone else may hold: then it tries again (5 times).
start_dns() {
	local try
	running dns && return 0
	mkdir -p "$RUN/dns"
	for try in 1 2 3 4 5; do
		"$TOP/tests/dnsd" -a 127.0.0.1 -p "$DNS_PORT" "$LAB/zone" </dev/null >/dev/null 2>"$RUN/dns/log" &
		echo $! >"$RUN/dns/pid"
		wait_listening "$RUN/dns/log" $! "the DNS server" >"$RUN/dns/port" && return 0
		[ "$DNS_PORT" = 0 ] && grep -q 'Address already in use' "$RUN/dns/log" || return 1
	done
	return 1
}

# start_host HOST [smtpd options...]
start_host() {
	local h=$1 dir=$RUN/$1 u port skip
	shift
	running "$h" && return 0
	mkdir -p "$dir"
	port=$(smtp_port)
	# a restart appends to the log, so lab/ladder.sh still sees the sessions before it
	skip=$({ wc -l <"$dir/log"; } 2>/dev/null || echo 0)
	if [ "$h" = old ]; then
		"$TOP/tests/fakesmtp" -a "$(addr_of old)" -p "$port" -n old.example.org heloonly </dev/null >/dev/null 2>>"$dir/log" &
	else
		for u in $(users_of "$h"); do mkdir -p "$dir/mail/$u"; done
		# 张三's ASCII address, for servers that cannot take a UTF-8 one
		[ "$h" != zh ] || [ -e "$dir/aliases" ] || echo 'zhangsan: 张三' >"$dir/aliases"
		# shellcheck disable=SC2046
		(cd "$dir" && exec "$TOP/smtpd" -a "$(addr_of "$h")" -p "$port" -n "$(name_of "$h")" \
			-m mail -q queue $(options_of "$h") -v "$@") </dev/null >/dev/null 2>>"$dir/log" &
	fi
	echo $! >"$dir/pid"
	port=$(wait_listening "$dir/log" $! "$(name_of "$h")" "$skip") || return 1
	[ -f "$RUN/port" ] || echo "$port" >"$RUN/port"
}

# Stop the process of a pid file and say what happened to it.
stop_pid_file() {
	local f=$1 h p i what
	h=$(basename "$(dirname "$f")")
	what="$(name_of "$h")"
	p=$(cat "$f" 2>/dev/null) || return 0
	rm -f "$f"
	[ -n "$p" ] || return 0
	if ! kill -0 "$p" 2>/dev/null; then
		echo "lab: $what was not running"
	elif zombie "$p"; then
		echo "lab: $what (pid $p) had already exited: a zombie, waiting for its parent to reap it"
	else
		kill -TERM "$p" 2>/dev/null
		for ((i = 0; i < 100; i++)); do live "$p" || break; sleep 0.05; done
		if live "$p"; then
			kill -KILL "$p" 2>/dev/null
			echo "lab: stopped $what (pid $p) with SIGKILL: it ignored SIGTERM for 5 s"
		else
			echo "lab: stopped $what (pid $p)"
		fi
	fi
}

up() {
	local h attempt
	[ -x "$TOP/smtpd" ] && [ -x "$TOP/smtp_send" ] && [ -x "$TOP/tests/dnsd" ] &&
		[ -x "$TOP/tests/fakesmtp" ] || { echo "lab: run make first" >&2; return 1; }
	mkdir -p "$RUN"
	start_dns || return 1
	[ $# -gt 0 ] || return 0
	for attempt in 1 2 3 4 5; do
		for h in "$@"; do start_host "$h" || break; done
		running "$h" && return 0
		[ "$PORT" = 0 ] || return 1
		# LAB_PORT=0: the free port of the first host may be taken on
		# another host's address (another lab, a test): all on a new one
		echo "lab: port $(smtp_port) is taken on $(addr_of "$h"); all hosts again on another" >&2
		for h in $HOSTS old; do [ -e "$RUN/$h/pid" ] && stop_pid_file "$RUN/$h/pid" >/dev/null; done
		rm -f "$RUN/port"
	done
	return 1
}

down() {
	local f n=0
	for f in "$RUN"/*/pid; do
		[ -e "$f" ] || continue
		stop_pid_file "$f"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || echo "lab: nothing was running in $RUN"
	rm -f "$RUN/port"
	return 0
}

status() {
	local h
	printf '%-6s %-26s %-22s %s\n' host name address state
	printf '%-6s %-26s %-22s %s\n' dns - "$(dns_addr)" "$(running dns && echo up || echo down)"
	for h in $HOSTS old; do
		[ "$h" = old ] && ! [ -e "$RUN/old" ] && continue
		printf '%-6s %-26s %-22s %s\n' "$h" "$(name_of "$h")" "$(addr_of "$h"):$(smtp_port)" \
			"$(running "$h" && echo up || echo down)"
	done
}

hints() {
	cat <<HINTS

The lab is up.  Try:
  ./smtp_send -R $(dns_addr) -M cs.example.net          # the route (CNAME, MX, A)
  ./smtp_send -R $(dns_addr) -M 例子.测试               # an internationalized name, by its A-labels
  nc -C $(addr_of mail) $(smtp_port)                             # talk SMTP to alice's server by hand
  printf 'Subject: hi\n\nhello\n' | ./smtp_send -v -S $(addr_of mail):$(smtp_port) -H laptop.example.org -f alice@example.org bob@cs.example.net
  ./smtp_send -v -q lab/run/mail/queue -R $(dns_addr) -P $(smtp_port) -H mail.example.org
  ls lab/run/mx1/mail/bob/new                                # where bob's mail lands
  lab/lab.sh stop mx1                                        # take the best MX down
  lab/ladder.sh                                              # the sessions so far, as a picture
  make lab-down                                              # stop everything
Logs (with -v transcripts): lab/run/*/log.  NOTES.md Part 6 has the exercises.
HINTS
}

say() { printf '%s\n' "$@"; }
show() { sed 's/^/    | /'; }

# The envelope of a queue entry beside the header of its message.
envelope_and_header() {
	say "        envelope (信封): what servers act on   header (信头): what people read"
	awk '
		hdr == 0 && /^sender / { sub(/^sender /, ""); env[++ne] = "MAIL FROM:" $0 }
		hdr == 0 && /^rcpt /   { sub(/^rcpt /, "");   env[++ne] = "RCPT TO:" $0 }
		hdr == 0 && /^$/       { hdr = 1; next }
		hdr == 1 && /^$/       { hdr = 2 }
		hdr == 1 && /^(From|To|Cc|Subject):/ { head[++nh] = $0 }
		END {
			n = ne > nh ? ne : nh
			for (i = 1; i <= n; i++) printf "        %-39s%s\n", env[i], head[i]
		}' "$1"
}

# Is the lab of make lab-up (lab/run, or $LAB_UP_DIR) running?  Then the
# demo's fixed ports are taken.  (A demo on free ports can run beside it.)
lab_is_running() {
	local d p up=${LAB_UP_DIR:-$LAB/run}
	[ "$PORT" != 0 ] || [ "$DNS_PORT" != 0 ] || return 1
	[ "$RUN" != "$up" ] || return 1
	for d in dns $HOSTS old; do
		p=$(cat "$up/$d/pid" 2>/dev/null) && [ -n "$p" ] && live "$p" && return 0
	done
	return 1
}

# The demo: alice@example.org writes to bob@cs.example.net; every step shown.
# A demo's own lab (a temporary one, or LAB_DIR): refused while the lab
# of make lab-up runs (both want the same addresses), stopped and removed
# when the demo ends, whatever happens.  Starts DNS and the hosts named.
demo_lab() {
	RUN=${LAB_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/smtp-lab.XXXXXX")}
	if lab_is_running; then
		[ -n "${LAB_DIR:-}" ] || rmdir "$RUN"
		echo "the lab is running: make lab-down first"
		return 1
	fi
	trap 'down >/dev/null; [ -n "${LAB_DIR:-}" ] || rm -rf "$RUN"' EXIT
	up "$@" || return 1
	mkdir -p "$RUN/client"
}

demo() {
	local dns port entry file n
	demo_lab mail mx2 || return 1
	dns=$(dns_addr)
	port=$(smtp_port)
	say "Figure 1. A message's journey, alice@example.org -> bob@cs.example.net" \
	    "========================================================================" ""
	say "Step 1. The internet of this demo, all on loopback:"
	say "    DNS server          $dns (tests/dnsd, zone lab/zone)" \
	    "    mail.example.org    127.0.0.2:$port  alice's mail server" \
	    "    mx1.example.net     127.0.0.3:$port  example.net's best MX (10): DOWN for now" \
	    "    mx2.example.net     127.0.0.4:$port  example.net's backup MX (20)" ""

	say "Step 2. Alice's mail program submits the message to her own server," \
	    "        mail.example.org (C: is the client, S: the server; RFC 5321 3.1-3.3):"
	printf 'From: Alice <alice@example.org>\nTo: Bob <bob@cs.example.net>\nSubject: Hello from the lab\n\nHi Bob,\n\nthis message crossed a small internet on loopback.\n.\nA line with a single dot was in it too.\n\nAlice\n' |
		"$TOP/smtp_send" -v -S "127.0.0.2:$port" -H alice-laptop.example.org -f alice@example.org bob@cs.example.net 2>&1 |
		tee "$RUN/client/1-submit.log" | sed 's/^smtp_send: //' | show
	say "        PIPELINING: MAIL, RCPT and DATA went out in one write, before any reply (RFC 2920)." \
	    "        \"..\": the message's line \".\" was sent with a dot added, so it could not end the data (RFC 5321 4.5.2)." ""

	entry=$(ls "$RUN/mail/queue/entries/" 2>/dev/null | head -n 1)
	say "Step 3. cs.example.net is not one of mail.example.org's domains, so the" \
	    "        server queued the message for relaying: queue/entries/$entry"
	if [ -n "$entry" ]; then
		show <"$RUN/mail/queue/entries/$entry"
		say "        The envelope travels beside the message, not inside it:"
		envelope_and_header "$RUN/mail/queue/entries/$entry"
	fi
	say ""

	say "Step 4. Where does mail for cs.example.net go?  The route, from DNS" \
	    "        (CNAME chain, MX records by preference, A records; RFC 5321 5.1):"
	"$TOP/smtp_send" -R "$dns" -P "$port" -M cs.example.net | show
	say ""

	say "Step 5. mail.example.org's queue runner relays the message, server to" \
	    "        server.  The best MX does not answer, so the backup gets it" \
	    "        (each line of the run starts with the entry's id, left out here):"
	"$TOP/smtp_send" -v -q "$RUN/mail/queue" -R "$dns" -P "$port" -H mail.example.org 2>&1 |
		tee "$RUN/client/2-queue.log" | sed -e "s/^smtp_send: ${entry:-none}: //" -e 's/^smtp_send: //' | show
	say ""

	file=$(ls "$RUN"/mx2/mail/bob/new/* 2>/dev/null | head -n 1)
	n=$(ls "$RUN"/mx2/mail/bob/new 2>/dev/null | wc -l | tr -d ' ')
	say "Step 6. The message in bob's Maildir on mx2.example.net, new/$(basename "${file:-none}"):"
	[ -n "$file" ] && show <"$file"
	say "        Return-Path and Delivered-To were added at final delivery; read the" \
	    "        Received: lines from the bottom up to follow the message's path." ""

	say "Step 7. The same journey as a ladder diagram, drawn from the transcripts" \
	    "        and logs above by lab/ladder.sh (time flows down):"
	"$LAB/ladder.sh" "$RUN" | show
	say ""

	say "Step 8. Stopping every process the demo started (by pid):"
	down | show
	if [ "$n" = 1 ]; then
		say "" "Result: the mail arrived (1 message in bob's Maildir)."
		return 0
	fi
	say "" "Result: FAILED, bob's Maildir holds $n messages. Logs: $RUN/*/log"
	return 1
}

# The message of the Chinese demo, its header's addresses filled in.
zh_message() {
	printf 'From: 张三 <%s>\nTo: %s\nSubject: 你好！这是一封中文邮件\n\n%s你好：\n\n这封信从一台电脑走到另一台，中间经过 DNS 和 SMTP。\n信头和正文都是 UTF-8。\n\n张三\n' \
		"$1" "$2" "$3"
}

# A stored message as a mail program reads it: Python's email package
# (RFC 2047 and quoted-printable decoded), else mblaze's mshow.
read_mail() {
	if [ -x /usr/bin/python3 ]; then
		/usr/bin/python3 - "$1" <<'PYTHON'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
for name in ('From', 'To', 'Subject'):
    print('%s: %s' % (name, m[name]))
print()
print(m.get_content(), end='')
PYTHON
	elif command -v mshow >/dev/null 2>&1; then
		MBLAZE=$RUN/mblaze mshow -N "$1"
	else
		echo "(neither /usr/bin/python3 nor mshow (Debian: mblaze) is installed to decode it)"
	fi
}

# The Chinese demo: 张三@例子.测试 writes to 李四@例子.测试 (a server with
# SMTPUTF8) and to wang@legacy.example.com (an old one); every step shown.
demo_zh() {
	local dns port lisi wang out
	demo_lab zh legacy || return 1
	dns=$(dns_addr)
	port=$(smtp_port)
	say "Figure 2. A Chinese message, 张三@例子.测试 -> 李四@例子.测试 and wang@legacy.example.com" \
	    "====================================================================================" ""
	say "Step 1. The internet of this demo, all on loopback:"
	say "    DNS server                  $dns (tests/dnsd, zone lab/zone)" \
	    "    mx.xn--fsqu00a.xn--0zwm56d  127.0.0.6:$port  the server of 例子.测试: offers SMTPUTF8" \
	    "    mx.legacy.example.com       127.0.0.7:$port  an old server: smtpd -E SMTPUTF8 -E 8BITMIME" ""

	say "Step 2. DNS has no Chinese: each label of 例子.测试 is looked up as its" \
	    "        A-label, \"xn--\" and its Punycode (RFC 3492; NOTES.md works 例子 by hand):"
	"$TOP/smtp_send" -R "$dns" -P "$port" -M 例子.测试 | show
	say ""

	say "Step 3. 张三's computer sends to 李四@例子.测试 by DNS itself.  The server" \
	    "        offers SMTPUTF8 in its EHLO reply, so MAIL FROM carries it, and the" \
	    "        addresses and the header go as they are, in UTF-8 (RFC 6531, RFC 6532):"
	zh_message 张三@例子.测试 '李四 <李四@例子.测试>' '李四，' |
		"$TOP/smtp_send" -v -R "$dns" -P "$port" -H zhangsan-laptop.example.org -f 张三@例子.测试 李四@例子.测试 2>&1 |
		tee "$RUN/client/1-zh.log" | sed 's/^smtp_send: //' | show
	say ""

	lisi=$(ls "$RUN"/zh/mail/李四/new/* 2>/dev/null | head -n 1)
	say "Step 4. On mx.xn--fsqu00a.xn--0zwm56d the mailbox of 李四 is a Maildir" \
	    "        whose name is UTF-8 (the demo's lab is removed at its end;"
	say "        in make lab-up's lab it is ls lab/run/zh/mail):"
	ls "$RUN/zh/mail" | show
	say "        and the message in it, new/$(basename "${lisi:-none}") (Received: ... with UTF8SMTP):"
	[ -n "$lisi" ] && show <"$lisi"
	say ""

	say "Step 5. To wang@legacy.example.com, the old server.  张三@例子.测试 has no" \
	    "        ASCII form (RFC 6531 3.5), and an address is never downgraded:"
	zh_message 张三@例子.测试 'wang@legacy.example.com' '老王，' |
		"$TOP/smtp_send" -R "$dns" -P "$port" -H zhangsan-laptop.example.org -f 张三@例子.测试 wang@legacy.example.com 2>&1 |
		sed 's/^smtp_send: //' | show
	say ""

	say "Step 6. So 张三 writes from his ASCII alias, zhangsan@xn--fsqu00a.xn--0zwm56d" \
	    "        (the same domain, spelt in A-labels).  Now only the header and the body" \
	    "        are UTF-8, and smtp_send fits them to the old server: the header as" \
	    "        RFC 2047 encoded-words, the body as quoted-printable (RFC 2045 6.7):"
	zh_message zhangsan@xn--fsqu00a.xn--0zwm56d '老王 <wang@legacy.example.com>' '老王，' |
		"$TOP/smtp_send" -v -R "$dns" -P "$port" -H zhangsan-laptop.example.org \
			-f zhangsan@xn--fsqu00a.xn--0zwm56d wang@legacy.example.com 2>&1 |
		tee "$RUN/client/2-legacy.log" | sed 's/^smtp_send: //' | show
	say ""

	wang=$(ls "$RUN"/legacy/mail/wang/new/* 2>/dev/null | head -n 1)
	say "Step 7. The message in wang's Maildir on mx.legacy.example.com, new/$(basename "${wang:-none}"):"
	[ -n "$wang" ] && show <"$wang"
	say "        Every byte is ASCII: =?UTF-8?B?...?= is base64 of UTF-8 (RFC 2047 4.1)," \
	    "        =E4=BD=A0 are the three bytes of 你 (quoted-printable)." ""

	say "Step 8. Both messages as a mail program reads them$([ -x /usr/bin/python3 ] && echo " (Python's email package)" ||
		{ command -v mshow >/dev/null 2>&1 && echo " (mshow, mblaze)"; }):"
	say "        李四's copy:"
	[ -n "$lisi" ] && read_mail "$lisi" | show
	say "        wang's copy:"
	[ -n "$wang" ] && read_mail "$wang" | show
	say ""

	say "Step 9. Stopping every process the demo started (by pid):"
	down | show
	out=
	if [ -n "$lisi" ] && [ -n "$wang" ] && [ -x /usr/bin/python3 ]; then
		[ "$(read_mail "$lisi" | sed -n '/^Subject/,$p')" = "$(read_mail "$wang" | sed -n '/^Subject/,$p' | sed 's/老王/李四/')" ] &&
			out="the same Chinese text"
	elif [ -n "$lisi" ] && [ -n "$wang" ]; then
		out="decode them to compare"
	fi
	if [ -n "$out" ]; then
		say "" "Result: both arrived (李四's with SMTPUTF8, wang's downgraded), $out."
		return 0
	fi
	say "" "Result: FAILED, a message is missing. Logs: $RUN/*/log"
	return 1
}

case ${1:-} in
up) up $HOSTS && status && hints ;;
down) down ;;
status) status ;;
stop) [ -n "${2:-}" ] && stop_pid_file "$RUN/$2/pid" && status ;;
start) [ -n "${2:-}" ] && h=$2 && shift 2 && up && start_host "$h" "$@" && status ;;
demo) demo ;;
demo-zh) demo_zh ;;
*) sed -n '2,31p' "$0"; exit 2 ;;
esac

#!/usr/bin/env bash
# lab/lab.sh - a small internet on loopback, to watch and poke SMTP.
#
#   lab/lab.sh up            start DNS and the three mail hosts
#   lab/lab.sh down          stop everything the lab started
#   lab/lab.sh status        what runs, where
#   lab/lab.sh stop HOST     stop one host (mail, mx1, mx2), e.g. the best MX
#   lab/lab.sh start HOST    start it again
#   lab/lab.sh demo          up (without mx1), send alice -> bob, explain, down
#
# The hosts (each an smtpd on its own loopback address, port $LAB_PORT):
#   mail.example.org  127.0.0.2  alice's server (example.org)
#   mx1.example.net   127.0.0.3  example.net's best MX (preference 10)
#   mx2.example.net   127.0.0.4  example.net's backup MX (preference 20)
# and tests/dnsd on 127.0.0.1:$LAB_DNS_PORT serving lab/zone.
# Nothing leaves the machine; no root needed.  State, logs and mailboxes
# live in $LAB_DIR (lab/run).  LAB_PORT=0 / LAB_DNS_PORT=0 take free ports.
set -u
LAB=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$LAB")
RUN=${LAB_DIR:-$LAB/run}
PORT=${LAB_PORT:-2525}
DNS_PORT=${LAB_DNS_PORT:-10053}
HOSTS="mail mx1 mx2"

addr_of() { case $1 in mail) echo 127.0.0.2 ;; mx1) echo 127.0.0.3 ;; mx2) echo 127.0.0.4 ;; esac; }
name_of() { case $1 in mail) echo mail.example.org ;; mx1) echo mx1.example.net ;; mx2) echo mx2.example.net ;; esac; }
domains_of() { case $1 in mail) echo "-d example.org" ;; *) echo "-d example.net -d cs.example.net" ;; esac; }
users_of() { case $1 in mail) echo "alice postmaster" ;; *) echo "bob postmaster" ;; esac; }

pid_of() { cat "$RUN/$1/pid" 2>/dev/null; }
running() { local p; p=$(pid_of "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
smtp_port() { cat "$RUN/port" 2>/dev/null || echo "$PORT"; }
dns_addr() { echo "127.0.0.1:$(cat "$RUN/dns/port" 2>/dev/null || echo "$DNS_PORT")"; }

# Wait for "listening ... port=N" in a log, at most 10 s; print N.
wait_listening() {
	local log=$1 pid=$2 i
	for ((i = 0; i < 200; i++)); do
		if grep -q listening "$log" 2>/dev/null; then
			sed -n 's/.*listening.* port=\([0-9]*\).*/\1/p' "$log" | head -n 1
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "lab: did not start, see $log" >&2
	cat "$log" >&2
	return 1
}

start_dns() {
	running dns && return 0
	mkdir -p "$RUN/dns"
	"$TOP/tests/dnsd" -a 127.0.0.1 -p "$DNS_PORT" "$LAB/zone" </dev/null >/dev/null 2>"$RUN/dns/log" &
	echo $! >"$RUN/dns/pid"
	wait_listening "$RUN/dns/log" $! >"$RUN/dns/port"
}

start_host() {
	local h=$1 dir=$RUN/$1 u port
	running "$h" && return 0
	mkdir -p "$dir"
	for u in $(users_of "$h"); do mkdir -p "$dir/mail/$u"; done
	port=$(smtp_port)
	# shellcheck disable=SC2046
	(cd "$dir" && exec "$TOP/smtpd" -a "$(addr_of "$h")" -p "$port" -n "$(name_of "$h")" \
		-m mail -q queue $(domains_of "$h") -v) </dev/null >/dev/null 2>"$dir/log" &
	echo $! >"$dir/pid"
	port=$(wait_listening "$dir/log" $!) || return 1
	[ -f "$RUN/port" ] || echo "$port" >"$RUN/port"
}

stop_pid_file() {
	local f=$1 p i
	p=$(cat "$f" 2>/dev/null) || return 0
	if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
		kill -TERM "$p" 2>/dev/null
		for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$p" 2>/dev/null
	fi
	rm -f "$f"
}

up() {
	local h
	[ -x "$TOP/smtpd" ] && [ -x "$TOP/smtp_send" ] && [ -x "$TOP/tests/dnsd" ] ||
		{ echo "lab: run make first" >&2; return 1; }
	mkdir -p "$RUN"
	start_dns || return 1
	for h in "$@"; do start_host "$h" || return 1; done
}

down() {
	local f
	for f in "$RUN"/*/pid; do [ -e "$f" ] && stop_pid_file "$f"; done
	rm -f "$RUN/port"
	return 0
}

status() {
	local h
	printf '%-6s %-18s %-22s %s\n' host name address state
	printf '%-6s %-18s %-22s %s\n' dns - "$(dns_addr)" "$(running dns && echo up || echo down)"
	for h in $HOSTS; do
		printf '%-6s %-18s %-22s %s\n' "$h" "$(name_of "$h")" "$(addr_of "$h"):$(smtp_port)" \
			"$(running "$h" && echo up || echo down)"
	done
}

hints() {
	cat <<HINTS

The lab is up.  Try:
  ./smtp_send -R $(dns_addr) -M cs.example.net          # the route (CNAME, MX, A)
  nc -C $(addr_of mail) $(smtp_port)                             # talk SMTP to alice's server by hand
  printf 'Subject: hi\n\nhello\n' | ./smtp_send -v -S $(addr_of mail):$(smtp_port) -f alice@example.org bob@cs.example.net
  ./smtp_send -v -q lab/run/mail/queue -R $(dns_addr) -P $(smtp_port) -H mail.example.org
  ls lab/run/mx1/mail/bob/new                                # where bob's mail lands
  lab/lab.sh stop mx1                                        # take the best MX down
  lab/lab.sh down                                            # stop everything
Logs (with -v transcripts): lab/run/*/log
HINTS
}

say() { printf '%s\n' "$@"; }
show() { sed 's/^/    | /'; }

# The demo: alice@example.org writes to bob@cs.example.net; every step shown.
demo() {
	local dns port entry file n
	RUN=${LAB_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/smtp-lab.XXXXXX")}
	trap 'down; [ -n "${LAB_DIR:-}" ] || rm -rf "$RUN"' EXIT
	up mail mx2 || return 1
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
		sed 's/^smtp_send: //' | show
	say ""

	entry=$(ls "$RUN/mail/queue/entries/" 2>/dev/null | head -n 1)
	say "Step 3. cs.example.net is not one of mail.example.org's domains, so the" \
	    "        server queued the message for relaying: queue/entries/$entry"
	[ -n "$entry" ] && show <"$RUN/mail/queue/entries/$entry"
	say ""

	say "Step 4. Where does mail for cs.example.net go?  The route, from DNS" \
	    "        (CNAME chain, MX records by preference, A records; RFC 5321 5.1):"
	"$TOP/smtp_send" -R "$dns" -P "$port" -M cs.example.net | show
	say ""

	say "Step 5. mail.example.org's queue runner relays the message, server to" \
	    "        server.  The best MX does not answer, so the backup gets it" \
	    "        (each line of the run starts with the entry's id, left out here):"
	"$TOP/smtp_send" -v -q "$RUN/mail/queue" -R "$dns" -P "$port" -H mail.example.org 2>&1 |
		sed -e "s/^smtp_send: ${entry:-none}: //" -e 's/^smtp_send: //' | show
	say ""

	file=$(ls "$RUN"/mx2/mail/bob/new/* 2>/dev/null | head -n 1)
	n=$(ls "$RUN"/mx2/mail/bob/new 2>/dev/null | wc -l | tr -d ' ')
	say "Step 6. The message in bob's Maildir on mx2.example.net, new/$(basename "${file:-none}"):"
	[ -n "$file" ] && show <"$file"
	say "        Return-Path and Delivered-To were added at final delivery; read the" \
	    "        Received: lines from the bottom up to follow the message's path." ""

	say "Step 7. Stopping every process the demo started (by pid)."
	down
	if [ "$n" = 1 ]; then
		say "" "Result: the mail arrived (1 message in bob's Maildir)."
		return 0
	fi
	say "" "Result: FAILED, bob's Maildir holds $n messages. Logs: $RUN/*/log"
	return 1
}

case ${1:-} in
up) up $HOSTS && status && hints ;;
down) down ;;
status) status ;;
stop) [ -n "${2:-}" ] && stop_pid_file "$RUN/$2/pid" && status ;;
start) [ -n "${2:-}" ] && up "$2" && status ;;
demo) demo ;;
*) sed -n '2,20p' "$0"; exit 2 ;;
esac

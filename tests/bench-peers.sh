#!/usr/bin/env bash
# bench-peers.sh - make bench-peers: smtpd and a private Postfix under the
# same loads, alternating in one run, with the machine's limits measured
# in the same run.  Numbers, not a test.
#
# Load: Postfix's own generator, smtp-source, 4 KiB messages to one
# Maildir user.  A message counts when its file is in new/.  Shapes:
#   1 session, a connection per message      (BENCH_N1 messages, 500)
#   1 session, one connection                (BENCH_N1)
#   20 sessions, a connection per message    (BENCH_N20, 2000)
#   20 sessions, one connection each         (BENCH_N20)
#   relay: BENCH_RELAY (2000) messages over 5 sessions into each MTA, timed
#     from the start of submission until one receiving smtpd has stored
#     them all; for us smtpd queues, then smtp_send -q DIR -F -j N (N = 1
#     and 4; N = 1 only if smtp_send has no -j); Postfix relays by itself.
# Each shape runs BENCH_ROUNDS (5) times, smtpd and Postfix alternating
# (who goes first changes each round), the machine's limits measured
# before each shape and before the relay runs; the table shows the
# medians of the rates and the best of the limits.
# The relay shape runs once.  Needs root (Postfix's master)
# and the postfix package; leaves nothing running.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
ROUNDS=${BENCH_ROUNDS:-5}
N1=${BENCH_N1:-500}
N20=${BENCH_N20:-2000}
NRELAY=${BENCH_RELAY:-2000}
SIZE=4096
PB=$TOP/tests/peerbench

# shellcheck source=postfix.sh
. "$TOP/tests/postfix.sh"

if [ "$(id -u)" != 0 ] || ! command -v smtp-source >/dev/null || [ ! -x "$PF_MASTER" ]; then
	echo "bench-peers: needs root and Debian's postfix package (postfix, smtp-source)" >&2
	exit 1
fi
make -s all tests/peerbench || exit 1
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-peers.XXXXXX") || exit 1
chmod 711 "$W"              # the postfix user walks down to its queue
SERVERS=()
PF_PID=
cleanup() {
	local p
	[ -z "$PF_PID" ] || pf_stop "$PF_PID"
	for p in "${SERVERS[@]}"; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# smtpd_start NAME [options]: our server in $W/NAME on a free port;
# sets PORT (empty if it did not start).
smtpd_start() {
	local dir=$W/$1 i; shift
	mkdir -p "$dir"
	(cd "$dir" && exec "$TOP/smtpd" -p 0 -c 40 -t 60 "$@") </dev/null >/dev/null 2>"$dir/log" &
	SPID=$!
	SERVERS+=("$SPID")
	for ((i = 0; i < 200; i++)); do
		grep -qs listening "$dir/log" && break
		sleep 0.05
	done
	PORT=$(sed -n 's/.*listening.* port=\([0-9]*\).*/\1/p' "$dir/log")
}

maildir() { mkdir -p "$1/new" "$1/cur" "$1/tmp"; }
# fresh DIR: an empty DIR (same owner), the old one moved aside.  Nothing
# is deleted during the run: on ext4 without a journal (this kind of
# virtual machine) every file created after many deletions pays for a
# scan past the recently freed inodes, so deleting here would slow
# down whichever run comes next.  cleanup removes everything at the end.
fresh() {
	local owner
	owner=$(stat -c %u "$1")
	mv "$1" "$(mktemp -d "$W/away/XXXXXX")/"
	mkdir -m 700 "$1"
	chown "$owner" "$1"
}

# Postfix's queue is empty again (at most 30 s)
pf_idle() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ -z "$(find "$W/pf/queue/incoming" "$W/pf/queue/active" "$W/pf/queue/maildrop" -type f 2>/dev/null | head -n 1)" ] && return 0
		sleep 0.05
	done
	return 1
}

# rate DIR N COMMAND...: "messages/s seconds load-CPU-seconds" until DIR
# has N new files ("- - -" if the load failed or did not finish in 300 s).
rate() {
	local dir=$1 n=$2 out; shift 2
	out=$("$PB" wait "$dir" "$n" 300 "$@" 2>>"$W/load.err")
	if [ $? -eq 0 ]; then
		echo "$out" | awk -v n="$n" '{ split($1, t, "="); split($4, c, "="); printf "%.0f %s %s\n", n / t[2], t[2], c[2] }'
	else
		echo "load failed: $* ($out)" >>"$W/load.err"
		echo "- - -"
	fi
}

# ---- the servers ------------------------------------------------------------------

smtpd_start sink -n sink.test -m mail; sink_port=$PORT
maildir "$W/sink/mail/x"
smtpd_start ours -n bench.test -m mail; ours_port=$PORT; ours_pid=$SPID
maildir "$W/ours/mail/bench"
smtpd_start relay -n relay.test -m mail -q queue; relay_port=$PORT
for ((try = 0; try < 5; try++)); do
	pf_port=$((20000 + RANDOM % 12000))
	pf_listening "$pf_port" && continue
	rm -rf "$W/pf"
	pf_config "$W/pf" "$pf_port" "relayhost = [127.0.0.1]:$sink_port"
	pf_start "$W/pf" && break
	[ -z "$PF_PID" ] || pf_stop "$PF_PID"
	PF_PID=
done
if [ -z "$ours_port" ] || [ -z "$sink_port" ] || [ -z "$relay_port" ] || [ -z "$PF_PID" ]; then
	echo "bench-peers: a server did not start" >&2
	cat "$W"/*/log "$W/pf/maillog" 2>/dev/null >&2
	exit 1
fi
maildir "$W/pf/mail/bench"
chown -R nobody "$W/pf/mail/bench"
mkdir -p "$W/away"

# ---- the loads ------------------------------------------------------------------------

SHAPES=("1 session, a connection per message" "1 session, one connection"
	"20 sessions, a connection per message" "20 sessions, one connection each")
shape_args() {      # smtp-source options of shape 0..3
	case $1 in
	0) echo "-s 1 -m $N1" ;;
	1) echo "-s 1 -m $N1 -d" ;;
	2) echo "-s 20 -m $N20" ;;
	3) echo "-s 20 -m $N20 -d" ;;
	esac
}
shape_n() { case $1 in 0 | 1) echo "$N1" ;; *) echo "$N20" ;; esac; }

load() {            # load PORT RCPT smtp-source-options...
	local port=$1 rcpt=$2; shift 2
	# shellcheck disable=SC2086
	echo smtp-source "$@" -l "$SIZE" -M bench.client -f load@bench.client -t "$rcpt" "127.0.0.1:$port"
}

limits() {          # durable writes/s (1, 2, 20 writers), fork+exit+wait us
	local w d
	for w in 1 2 20; do
		d=$(mktemp -d "$W/away/XXXXXX")
		maildir "$d"
		"$PB" durable "$d" "$w" 1 | sed 's/.*=//'
	done
	"$PB" fork 1000 | sed 's/.*=//'
}

# CPU time (clock ticks) of a server and its children so far, from
# /proc: its own and its reaped children's (cutime, cstime), plus the
# children still running.  For Postfix that is the master, its daemons,
# and the daemons it has reaped.
cpu_ticks() {
	local f line p sum=0
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		p=${line%% *}
		line=${line##*) }       # the fields after "pid (comm) "
		# shellcheck disable=SC2086
		set -- $line
		# $2 ppid; $12 utime, $13 stime, $14 cutime, $15 cstime
		if [ "$p" = "$ROOT" ] || [ "$2" = "$ROOT" ]; then
			sum=$((sum + ${12} + ${13} + ${14} + ${15}))
		fi
	done
	echo "$sum"
}
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
CORES=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)

# The whole machine's CPU time so far, from /proc/stat: "busy total"
# (idle and iowait are not busy).
machine_ticks() {
	awk '$1 == "cpu" { for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# measure SHAPE SERVER-PID DIR PORT RCPT: "rate CPU-us-per-message busy
# all": the server's CPU time per message; its and the load generator's
# CPU time as a share of what the machine's cores could give in the
# run's time; the share of the whole machine's CPU time that was busy
# (other programs on the machine included)
measure() {
	local s=$1 pid=$2 dir=$3 n c0 c1 m0 m1 r
	n=$(shape_n "$s")
	fresh "$dir"
	c0=$(ROOT=$pid cpu_ticks)
	m0=$(machine_ticks)
	# shellcheck disable=SC2046
	r=$(rate "$dir" "$n" $(load "$4" "$5" $(shape_args "$s")))
	# at once, over the same window as the rate (sessions that have
	# exited but are not reaped yet still count: ppid is the server)
	m1=$(machine_ticks)
	c1=$(ROOT=$pid cpu_ticks)
	echo "$r $m0 $m1" | awk -v a="$c0" -v b="$c1" -v n="$n" -v t="$TICK" -v cores="$CORES" '
		$1 == "-" { print "- - - -"; exit }
		{ cpu = (b - a) / t
		  printf "%s %.0f %.0f %.0f\n", $1, cpu * 1e6 / n, 100 * (cpu + $3) / (cores * $2),
			 100 * ($6 - $4) / ($7 - $5) }'
}
# Before either server's run Postfix has finished its last one (it
# still removes queue files after the last delivery).
run_ours() { pf_idle; measure "$1" "$ours_pid" "$W/ours/mail/bench/new" "$ours_port" bench@bench.test; }
run_pf() { pf_idle; measure "$1" "$PF_PID" "$W/pf/mail/bench/new" "$pf_port" bench@pf.test; }

echo "make bench-peers: $CORES cores, smtpd and Postfix $(postconf -d -h mail_version 2>/dev/null) alternating, $ROUNDS rounds"
echo "(per shape: smtpd/s Postfix/s; the machine's limits measured before each shape)"
: >"$W/results"
for ((r = 1; r <= ROUNDS; r++)); do
	line="round $r:"
	for s in 0 1 2 3; do
		echo "limits $s $(limits | tr '\n' ' ')" >>"$W/results"
		# who goes first changes every round, so a drift of the disk
		# does not always favour the same one
		if [ $((r % 2)) = 1 ]; then
			a=$(run_ours $s); b=$(run_pf $s)
		else
			b=$(run_pf $s); a=$(run_ours $s)
		fi
		echo "shape $s $a $b" >>"$W/results"
		line="$line  ${a%% *}/${b%% *}"
	done
	echo "$line"
done

# the relay shape: ours with -j 1 (and -j 4), Postfix between them
mkdir -p "$W/jtest"
"$TOP/smtp_send" -q "$W/jtest" -j 1 >/dev/null 2>&1
if [ $? -eq 64 ]; then JOBS="1"; else JOBS="1 4"; fi
relay_ours() {
	local j=$1
	fresh "$W/sink/mail/x/new"
	# shellcheck disable=SC2046
	rate "$W/sink/mail/x/new" "$NRELAY" sh -c "$(load "$relay_port" x@sink.test -s 5 -m "$NRELAY" -d) >/dev/null &&
		exec \"\$0\" -q \"\$1\" -F -H relay.test -S 127.0.0.1:$sink_port $( [ "$JOBS" = 1 ] || echo "-j $j" ) 2>>\"\$2\"" \
		"$TOP/smtp_send" "$W/relay/queue" "$W/relay-run.log"
}
relay_pf() {
	fresh "$W/sink/mail/x/new"
	pf_idle
	# shellcheck disable=SC2046
	rate "$W/sink/mail/x/new" "$NRELAY" $(load "$pf_port" x@sink.test -s 5 -m "$NRELAY" -d)
}
echo "limits relay $(limits | tr '\n' ' ')" >>"$W/results"
j1=$(relay_ours 1 | cut -d' ' -f1)
rp=$(relay_pf | cut -d' ' -f1)
j4=-
[ "$JOBS" = 1 ] || j4=$(relay_ours 4 | cut -d' ' -f1)
left=$(find "$W/relay/queue" -type f -path '*entries*' | wc -l)

# ---- the table ---------------------------------------------------------------------------

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
best() { sort -n | awk -v w="$1" 'NR == 1 { lo = $1 } { hi = $1 } END { if (!NR) print "-"; else print (w == "max" ? hi : lo) }'; }
col() { awk -v k="$1" -v s="$2" -v c="$3" '$1 == k && (s == "" || $2 == s) { print $c }' "$W/results" | grep -v '^-$' | median; }
# A limit is the best the machine did in this run: the disk's speed
# changes by a factor of two within minutes, and that noise can only
# make a measurement slower.
lim() { awk -v c="$1" '$1 == "limits" { print $c }' "$W/results" | best "$2"; }
D1=$(lim 3 max); D2=$(lim 4 max); D20=$(lim 5 max); FK=$(lim 6 min)

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.0f%%", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }

# What bounds each shape: one session waits for each durable write in
# turn (1 writer), and with a connection per message for a fork too; 20
# sessions have up to 20 durable writes waiting at once (20 writers).
# "CPU busy" is the server's and the load generator's CPU time over what
# the machine's cores could give in the run's time, then the same for
# everything the machine ran: near 100 %, the processors are the limit.
bound() {           # bound SHAPE: "limit|what"
	case $1 in
	0) awk -v d="$D1" -v f="$FK" 'BEGIN { printf "%.0f|1 writer + fork\n", 1 / (1 / d + f / 1e6) }' ;;
	1) echo "$D1|1 writer" ;;
	*) echo "$D20|20 writers" ;;
	esac
}
FMT='%-38s %7s %9s %6s  %-22s %6s %7s  %7s %7s  %6s %7s\n'
row() {             # row LABEL SHAPE "rate cpu busy all" (smtpd) "rate cpu busy all" (Postfix)
	local b lim a ca ba ma p cp bp mp
	read -r a ca ba ma <<<"$3"
	read -r p cp bp mp <<<"$4"
	b=$(bound "$2"); lim=${b%%|*}
	# shellcheck disable=SC2059
	printf "$FMT" "$1" "$a" "$p" "$(ratio "$a" "$p")" "${b#*|} $lim/s" \
		"$(pct "$a" "$lim")" "$(pct "$p" "$lim")" "${ba:--}/${ma:--}%" "${bp:--}/${mp:--}%" "${ca:-}" "${cp:-}"
}
# the medians of a shape's fields for one server: "rate cpu busy all"
medians() { local c; for c in "$@"; do col shape "$S" "$c"; done | tr '\n' ' '; }

echo
echo "machine (best of $(grep -c '^limits' "$W/results") samples): durable writes/s: $D1 with 1 writer, $D2 with 2, $D20 with 20; fork+exit+wait: $FK us"
echo "(a durable write: create in tmp/, write 4 KiB, fsync, rename into new/, fsync new/)"
echo
printf '%-38s %7s %9s %6s  %-22s %14s  %15s  %14s\n' "" "" "" "" "" "% of limit" "CPU busy *" "CPU us/msg"
# shellcheck disable=SC2059
printf "$FMT" "shape (4 KiB messages)" "smtpd/s" "Postfix/s" "ratio" "bounding limit" "smtpd" "Postfix" "smtpd" "Postfix" "smtpd" "Postfix"
for S in 0 1 2 3; do
	row "${SHAPES[$S]}" "$S" "$(medians 3 4 5 6)" "$(medians 7 8 9 10)"
done
printf '%-38s %8s %9s %6s\n' "relay $NRELAY over 5 sessions, -j 1" "$j1" "$rp" "$(ratio "$j1" "$rp")"
if [ "$JOBS" = 1 ]; then
	echo "relay, -j 4: smtp_send has no -j option yet"
else
	printf '%-38s %8s %9s %6s\n' "relay $NRELAY over 5 sessions, -j 4" "$j4" "$rp" "$(ratio "$j4" "$rp")"
fi
echo "* CPU busy: the server and smtp-source / the whole machine (everything running), % of $CORES cores"
[ "$left" = 0 ] || echo "note: $left entries left in our relay queue"
[ ! -s "$W/load.err" ] || { echo "load errors:"; head -n 20 "$W/load.err"; }

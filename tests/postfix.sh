# shellcheck shell=bash
# tests/postfix.sh - a private Postfix instance, for the interop tests
# (tests/groups/interop.sh) and make bench-peers (tests/bench-peers.sh).
#
#   pf_config DIR PORT [main.cf line]...   write DIR/etc/main.cf and master.cf
#   pf_start DIR                           start it; sets PF_PID (0: ok, 1: failed)
#   pf_stop PID                            stop it and its children, by pid
#   pf_procs DIR                           how many of its processes are left
#
# The instance lives in DIR and nowhere else: configuration in DIR/etc,
# queue in DIR/queue, data in DIR/data, log in DIR/maillog (maillog_file,
# Postfix 3.4 and later: no syslog needed), mail for the domain pf.test
# in the Maildirs DIR/mail/USER/ (the virtual(8) delivery agent, as uid
# nobody).  It listens on 127.0.0.1:PORT only and asks no DNS server.
#
# What a private instance needs, found by trying (Postfix 3.7, as root):
#  - root, because the master binds and then runs its daemons as
#    mail_owner (postfix); setgid_group (postdrop) must exist too.  Both
#    come with Debian's package, which also made the queue's layout.
#  - `postfix -c DIR check` creates the queue's subdirectories with the
#    right owners, if queue_directory exists; data_directory must belong
#    to mail_owner.  alternate_config_directories is not needed: only the
#    set-gid programs (postdrop, postqueue) check it, and we use neither.
#  - maillog_file must start with one of maillog_file_prefixes, and the
#    postlog service must be in master.cf.
#  - every directory above DIR must be searchable by the postfix user.
#  - `postfix start` would detach the master; running the master
#    ourselves with -d keeps it our child, so we stop it by its pid.
#    setsid(1) makes it a process group leader: on SIGTERM it passes the
#    signal on to its group (without, it logs "kill process group: No
#    such process", and its children exit when they see it gone).
#    pf_stop waits for the master and for each child.

PF_MASTER=/usr/lib/postfix/sbin/master

pf_config() {
	local dir=$1 port=$2 line
	shift 2
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/mail"
	chown postfix "$dir/data"
	chown nobody "$dir/mail"
	chmod 755 "$dir" "$dir/etc"
	{
		echo "compatibility_level = 3.6"
		echo "queue_directory = $dir/queue"
		echo "data_directory = $dir/data"
		echo "mail_owner = postfix"
		echo "setgid_group = postdrop"
		echo "maillog_file = $dir/maillog"
		echo "maillog_file_prefixes = $dir"
		echo "inet_interfaces = 127.0.0.1"
		echo "inet_protocols = ipv4"
		echo "myhostname = postfix.test"
		echo "mydomain = test"
		echo "mydestination ="
		echo "mynetworks = 127.0.0.0/8"
		# no DNS at all: peers by address, client names not looked up
		echo "smtp_dns_support_level = disabled"
		echo "smtpd_peername_lookup = no"
		echo "alias_maps ="
		echo "alias_database ="
		echo "local_recipient_maps ="
		echo "biff = no"
		echo "virtual_mailbox_domains = pf.test"
		echo "virtual_mailbox_base = $dir/mail"
		echo "virtual_mailbox_maps = texthash:$dir/etc/boxes"
		echo "virtual_uid_maps = static:$(id -u nobody)"
		echo "virtual_gid_maps = static:$(id -g nobody)"
		for line in "$@"; do echo "$line"; done
	} >"$dir/etc/main.cf"
	for line in alice bob carol dave erin frank grace heidi bench; do echo "$line@pf.test $line/"; done >"$dir/etc/boxes"
	# master.cf: Debian's services without chroot, smtpd on our address
	cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	chmod 644 "$dir/etc/main.cf" "$dir/etc/master.cf" "$dir/etc/boxes"
}

# pf_start DIR: check, then run the master in the foreground of a
# background job; wait (at most 10 s) until it accepts connections.
pf_start() {
	local dir=$1 port i
	port=$(sed -n 's/^127\.0\.0\.1:\([0-9]*\) inet.*/\1/p' "$dir/etc/master.cf")
	PF_PID=
	postfix -c "$dir/etc" check >>"$dir/check.log" 2>&1 || return 1
	setsid "$PF_MASTER" -c "$dir/etc" -d </dev/null >>"$dir/master.log" 2>&1 &
	PF_PID=$!
	for ((i = 0; i < 200; i++)); do
		kill -0 "$PF_PID" 2>/dev/null || return 1
		if grep -qs 'daemon started' "$dir/maillog" && pf_listening "$port"; then
			# setsid forks when its caller leads a process group (job
			# control on): then the master is the pid in its pid file
			i=$(tr -d ' ' <"$dir/queue/pid/master.pid")
			[ -n "$i" ] && PF_PID=$i
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# Is something listening on 127.0.0.1:PORT?  ss(8) asks the kernel; a
# test connection would show up in Postfix's log as a lost session.
pf_listening() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# pf_stop PID: the master, then each child it had, by pid (10 s each,
# then SIGKILL); returns when none of them is left.
pf_stop() {
	local master=$1 kids p f ppid i
	[ -n "$master" ] || return 0
	kids=$(for f in /proc/[0-9]*/stat; do
		read -r p _ _ ppid _ 2>/dev/null <"$f" || continue
		[ "$ppid" = "$master" ] && echo "$p"
	done)
	for p in $master $kids; do
		kill -TERM "$p" 2>/dev/null || continue
		for ((i = 0; i < 200; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	done
	wait "$master" 2>/dev/null
	return 0
}

# pf_procs DIR: the instance's processes still there (the master hands
# MAIL_CONFIG=DIR/etc to every daemon it starts; from /proc).
pf_procs() {
	local f n=0
	for f in /proc/[0-9]*/environ; do
		tr '\0' '\n' 2>/dev/null <"$f" | grep -qx "MAIL_CONFIG=$1/etc" && n=$((n + 1))
	done
	echo "$n"
}

# shellcheck shell=bash
# tests/groups/addresses.sh, sourced by test.sh
# smtpd: mailboxes, address literals, relay control, aliases
# Groups: mailboxes literals relay aliases
TEST_GROUPS+=(mailboxes literals relay aliases)

t_mailboxes() {
	start_smtpd mbox -m mail
	local d=$T/mbox out
	mkdir -p "$d/mail/alice" "$d/mail/Carol"
	out=$(rcpt_codes "$PORT" '<alice@localhost>
<ALICE@LocalHost>
<alice+news@localhost>
<carol@localhost>
<"alice"@localhost>
<@relay.one,@relay.two:alice@localhost>
<alice@mx.test>
<postmaster>
<PostMaster@localhost>
<nobody@localhost>
<"john doe"@localhost>
<"user@other"@localhost>
<user%other@localhost>
<other!user@localhost>
<"../x"@localhost>
<"a/b"@localhost>
<".hidden"@localhost>
<a/b@localhost>
<../x@localhost>
<.hidden@localhost>
<user@other@localhost>
<alice>
<>
alice@localhost')
	check "local recipients: case, +tag, quoting, source route, postmaster; refusals" "250 <alice@localhost>
250 <ALICE@LocalHost>
250 <alice+news@localhost>
250 <carol@localhost>
250 <\"alice\"@localhost>
250 <alice@localhost>
250 <alice@mx.test>
250 <postmaster>
250 <PostMaster@localhost>
550 5.1.1
553 5.1.1
553 5.1.1
553 5.1.1
553 5.1.1
553 5.1.1
553 5.1.1
553 5.1.1
553 5.1.1
501 5.1.3
501 5.1.3
501 5.1.3
501 5.1.3
501 5.1.3
501 5.1.3" "$out"
	# an address literal one octet over DOMAIN_MAX (found by fuzzing: it
	# overflowed a stack buffer by one byte; tests/sanitize.sh sees that)
	# (in a source route it lands in a buffer of its own, where ASan sees it)
	out=$(printf 'HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<@[IPv6:%0249d]:alice@localhost>\r\nRCPT TO:<a@[IPv6:%0249d]>\r\nRCPT TO:<a@[IPv6:%0248d]>\r\nQUIT\r\n' 1 1 1 |
		"$CHAT" -l 127.0.0.1 "$PORT" | codes | tr '\n' ' ')
	check "address literals of 256 and 255 octets: refused as bad syntax, no overflow" "220 250 250 501 501 501 221 " "$out"
	check "nothing outside the mail root, no stray mailboxes" "Carol alice" \
		"$(ls "$d/mail" | tr '\n' ' ' | sed 's/ $//')"
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<Carol+x@localhost>\nRCPT TO:<postmaster>\nDATA\nhi\n.\nQUIT\n' | smtp "$PORT" | codes | tr '\n' ' ')
	check "mailbox found case-insensitively, postmaster created on demand" "220 250 250 250 250 354 250 221 |1 1" \
		"$out|$(count_files "$d/mail/Carol/new") $(count_files "$d/mail/postmaster/new")"
	check "Delivered-To of <postmaster> names our domain" "Delivered-To: postmaster@localhost" \
		"$(sed -n 2p "$(only_file "$d/mail/postmaster/new")")"
	stop_pid "$SPID"

	start_smtpd mbox2 -m mail -A -d example.org -d Example.NET
	out=$(rcpt_codes "$PORT" '<newuser@EXAMPLE.org>
<other@example.net>
<x@localhost>')
	check "-A creates mailboxes; -d replaces the default domains" "250 <newuser@EXAMPLE.org>
250 <other@example.net>
250 <x@localhost>" "$out"
	printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<newuser@example.org>\nRCPT TO:<x@localhost>\nDATA\nhi\n.\nQUIT\n' | smtp "$PORT" >/dev/null
	check "-A: the new Maildir has tmp/ new/ cur/; localhost is no longer ours (queued)" "cur new tmp|1|1" \
		"$(ls "$T/mbox2/mail/newuser" | tr '\n' ' ' | sed 's/ $//')|$(count_files "$T/mbox2/mail/newuser/new")|$(count_files "$T/mbox2/queue/entries")"
	stop_pid "$SPID"
}

t_literals() {
	start_smtpd lit -m mail
	local d=$T/lit out
	mkdir -p "$d/mail/alice"
	out=$(rcpt_codes "$PORT" '<alice@[127.0.0.1]>
<alice@[127.0.0.2]>
<alice@[IPv6:::1]>
<alice@[300.1.1.1]>')
	check "address literals: ours is local, others are relayed, bad ones refused" "250 <alice@[127.0.0.1]>
250 <alice@[127.0.0.2]>
250 <alice@[IPv6:::1]>
501 5.1.3" "$out"
	printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@[127.0.0.1]>\nRCPT TO:<bob@[127.0.0.2]>\nDATA\nhi\n.\nQUIT\n' | smtp "$PORT" >/dev/null
	check "[127.0.0.1] delivered locally, [127.0.0.2] queued" "1 rcpt <bob@[127.0.0.2]>" \
		"$(count_files "$d/mail/alice/new") $(grep '^rcpt' "$d"/queue/entries/*)"
	stop_pid "$SPID"

	if ! printf '' | "$CHAT" -T 1 ::1 1 2>&1 | grep -q 'refused'; then
		skip "IPv6 loopback not available"
		return
	fi
	start_smtpd lit6 -a ::1 -m mail
	mkdir -p "$T/lit6/mail/alice"
	out=$(printf 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@[IPv6:::1]>\r\nDATA\r\nv6\r\n.\r\nQUIT\r\n' |
		"$CHAT" ::1 "$PORT" | norm | grep -v '^250-')
	check "IPv6: listens on ::1, [IPv6:::1] is local" "220 mx.test ESMTP
250 HELP
250 2.1.0 Sender <a@b.test> OK
250 2.1.5 Recipient <alice@[IPv6:::1]> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
221 2.0.0 mx.test closing connection" "$out"
	check "IPv6 client in Received: as [IPv6:::1]" "Received: from c ([IPv6:::1])" \
		"$(sed -n 3p "$(only_file "$T/lit6/mail/alice/new")")"
	stop_pid "$SPID"
}

t_relay() {
	# The loopback client plays an outsider: only 10.0.0.0/8 may relay.
	start_smtpd relay -m mail -r 10.0.0.0/8 -r 2001:db8::/32
	local d=$T/relay out
	mkdir -p "$d/mail/alice" "$d/mail/user"
	out=$(rcpt_codes "$PORT" '<bob@example.net>
<alice@localhost>
<user%other.test@localhost>
<other.test!user@localhost>
<"user@other.test"@localhost>
<@localhost:user@other.test>
<user@other.test@localhost>
<user@[127.0.0.2]>')
	check "no open relay: outsiders get 550 5.7.1; relay tricks refused" "550 5.7.1
250 <alice@localhost>
553 5.1.1
553 5.1.1
553 5.1.1
550 5.7.1
501 5.1.3
550 5.7.1" "$out"
	check "nothing queued for an outsider" "0" "$(count_files "$d/queue")"
	stop_pid "$SPID"

	start_smtpd relay2 -m mail
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<"john doe"@Remote.Example>\nRCPT TO:<@x.test:bob@remote.example>\nDATA\nSubject: q\n\nbody\n.\nQUIT\n' | smtp "$PORT" | codes | tr '\n' ' ')
	check "loopback may relay by default" "220 250 250 250 250 354 250 221 " "$out"
	local q
	q=$(only_file "$T/relay2/queue/entries")
	check "queue entry: envelope lines, empty line, Received:, message" "version 2
id $(basename "$q")
sender <a@b.test>
arrival N
attempts 0
next N
rcpt <\"john doe\"@Remote.Example>
rcpt <bob@remote.example>

Received: from c ([127.0.0.1])
	by mx.test with SMTP id <$(basename "$q")@mx.test>;
	DATE
Subject: q

body" "$(sed -E -e 's/^(arrival|next) [0-9]+$/\1 N/' -e 's/^\t[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} [-+][0-9]{4}$/\tDATE/' "$q")"
	check "queue: nothing left in tmp/" "0" "$(count_files "$T/relay2/queue/tmp")"
	stop_pid "$SPID"
}

t_aliases() {
	local d=$T/alias out i
	mkdir -p "$d/mail/alice" "$d/mail/bob" "$d/mail/carol"
	cat >"$d/aliases" <<'A'
# a comment line
staff: alice, bob, zed,
	carol@localhost
Team:  staff, dave@remote.example
loop1: loop2
loop2: loop1, alice
self:  self, bob
ghosts: nobody, |/bin/cat, /tmp/file, :include:/etc/x
postmaster: carol
A
	start_smtpd alias -m mail -x "$d/aliases" -V
	out=$(printf 'EXPN team\nEXPN loop1\nEXPN self\nEXPN alice\nEXPN ghosts\nVRFY alice\nVRFY <bob@localhost>\nVRFY nobody\nVRFY staff\nVRFY x@remote.example\nQUIT\n' | smtp "$PORT" -l | norm)
	check "-V: EXPN expands aliases (loops broken), VRFY answers truthfully" "220 mx.test ESMTP
250-2.1.5 <alice@localhost>
250-2.1.5 <bob@localhost>
250-2.1.5 <carol@localhost>
250 2.1.5 <dave@remote.example>
250 2.1.5 <alice@localhost>
250 2.1.5 <bob@localhost>
250 2.1.5 <alice@localhost>
550 5.1.1 No such local alias or user
250 2.1.5 <alice@localhost>
250 2.1.5 <bob@localhost>
550 5.1.1 User unknown
252 2.1.5 That is a list of 3 members; EXPN lists them
252 2.0.0 Not a local address; will accept and attempt delivery
221 2.0.0 mx.test closing connection" "$out"
	out=$(printf 'HELO c\nMAIL FROM:<a@b.test>\nRCPT TO:<team@localhost>\nRCPT TO:<bob@localhost>\nRCPT TO:<ghosts@localhost>\nRCPT TO:<postmaster>\nDATA\nSubject: all\n\nhi\n.\nQUIT\n' | smtp "$PORT" | norm | sed -n '5,7p')
	check "an alias with no deliverable member gets 550" "250 2.1.5 Recipient <bob@localhost> OK
550 5.1.1 <ghosts@localhost>: User unknown
250 2.1.5 Recipient <postmaster> OK" "$out"
	check "alias members delivered once each, remote member queued, postmaster aliased" "1 1 1 rcpt <dave@remote.example> no" \
		"$(count_files "$d/mail/alice/new") $(count_files "$d/mail/bob/new") $(count_files "$d/mail/carol/new") $(grep -h '^rcpt' "$d"/queue/entries/*) $([ -d "$d/mail/postmaster" ] && echo yes || echo no)"
	check "Delivered-To names the member" "Delivered-To: carol@localhost" \
		"$(sed -n 2p "$(ls "$d"/mail/carol/new/* | head -n 1)")"
	check "a member without a mailbox is dropped, but never silently: the log names it" \
		'alias-member-ignored member="zed" reason=no-mailbox' \
		"$(grep -o 'alias-member-ignored member="zed".*' "$d/log" | sort -u)"
	stop_pid "$SPID"

	# an alias of 30 long remote addresses: a reply of about 7 KB, whole
	local long
	long=$(printf 'a%.0s' $(seq 60)).$(printf 'b%.0s' $(seq 60)).$(printf 'c%.0s' $(seq 60)).example
	{ printf 'big: '; for i in $(seq 1 30); do printf '%s%d@%s' "${i:+, }" "$i" "$long"; done | sed 's/^, //'; echo; } >"$d/aliases.big"
	start_smtpd alias3 -m mail -x "$d/aliases.big" -V
	out=$(printf 'EXPN big\nQUIT\n' | smtp "$PORT" -l | tr -d '\r')
	check "EXPN of a long list (7 KB): every member, one line each" "30|29|250 2.1.5 <30@$long>" \
		"$(echo "$out" | grep -c "@$long>")|$(echo "$out" | grep -c '^250-2.1.5 <')|$(echo "$out" | grep '^250 2.1.5')"
	stop_pid "$SPID"

	start_smtpd alias2 -m mail
	mkdir -p "$T/alias2/mail/alice"
	out=$(printf 'VRFY alice\nEXPN alice\nVRFY\nQUIT\n' | smtp "$PORT" -l | norm)
	check "without -V: VRFY and EXPN 252 (RFC 5321 7.3)" "220 mx.test ESMTP
252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery
252 2.0.0 Cannot EXPN, the server runs without -V; will accept message and attempt delivery
501 5.5.4 Syntax: VRFY <user>
221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
}

# shellcheck shell=bash
# tests/groups/intl.sh, sourced by test.sh
# Chinese mail end to end (issue 10): internationalized domains (A-labels,
# Punycode, RFC 3492 7.1), SMTPUTF8 in smtp_send, UTF-8 in the header and
# its RFC 2047 downgrade, quoted-printable for a server without 8BITMIME,
# the MIME fields of a submission, the queue entry's smtputf8 line.  What
# a server received is checked byte for byte, and decoded again by an
# independent reader, Python's email package.
# Groups: intl_punycode intl_idn intl_smtputf8 intl_downgrade intl_qp
#         intl_submit intl_queue intl_smtpd intl_bytes intl_domains intl_withhold
#         intl_relay
TEST_GROUPS+=(intl_punycode intl_idn intl_smtputf8 intl_downgrade intl_qp intl_submit intl_queue
	intl_smtpd intl_bytes intl_domains intl_withhold intl_relay)

PY=/usr/bin/python3
have_python() { [ -x "$PY" ] && "$PY" -c 'import email.policy' 2>/dev/null; }

IDN_ZONE='# 例子.测试 and its mail host, as DNS knows them: A-labels
xn--fsqu00a.xn--0zwm56d     MX  10 mx.xn--fsqu00a.xn--0zwm56d
mx.xn--fsqu00a.xn--0zwm56d  A   127.0.0.31
'

# A message file (CRLF or LF) as Python's email package reads it: the
# header fields named, decoded, then the body, decoded (get_content).
py_read() {
	"$PY" - "$@" <<'PYTHON'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
for name in sys.argv[2:]:
    print('%s: %s' % (name, m[name]))
print('--')
print(m.get_content(), end='')
PYTHON
}

# The data a fake server received (data_of), with LF line ends, into FILE.
data_to() { data_of "$1" | sed 's/\r$//' >"$2"; }

# The longest line of a file, CRLF not counted.
longest() { tr -d '\r' <"$1" | awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }'; }

t_intl_punycode() {
	# RFC 3492 7.1 (B) and (C), the Chinese sample strings, by their code
	# points, must come out of smtp_send's encoder as the RFC prints them:
	# the A-label it asks DNS for.  More labels (other scripts, a 4-byte
	# character, mixed case, ASCII with one accent) against Python's codec.
	start_dnsd intlpuny <<<'# no records: every name is NXDOMAIN'
	local label want got out
	while read -r label want; do
		out=$("$SEND" -v -R "$DNS" -T 2 -M "$label.test" 2>&1)
		got=$(echo "$out" | sed -n 's/^smtp_send: dns: xn--\(.*\)\.test MX? .*/\1/p' | head -n 1)
		check "Punycode: $label -> $want" "$want" "$got"
	done < <("$PY" - <<'PYTHON'
rfc = [([0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4, 0x4E2D, 0x6587], 'ihqwcrb4cv8a8dqg056pqjye'),
       ([0x4ED6, 0x5011, 0x7232, 0x4EC0, 0x9EBD, 0x4E0D, 0x8AAA, 0x4E2D, 0x6587], 'ihqwctvzc91f659drss3x8bo0yb')]
for cps, puny in rfc:
    label = ''.join(map(chr, cps))
    assert label.encode('punycode').decode() == puny      # the checker agrees with the RFC
    print(label, puny)
for label in ['例子', '测试', '中文', '张三', 'Bücher', '3年B組金八先生', 'почемужеонинеговорятпорусски',
              'ひとつ屋根の下2', 'a\U0001F600b', 'mañana-3', 'ü']:
    print(label, label.encode('punycode').decode())
PYTHON
)
	# RFC 1035 2.3.4: a label is 63 octets at most, the A-label included
	label=的一是不了人我在有他这为之大来以个中上们到说
	check "Punycode: 22 characters whose A-label is 63 octets: looked up" \
		"  $label.test is xn--$("$PY" -c 'import sys; print(sys.argv[1].encode("punycode").decode())' "$label").test in DNS (A-labels: the Punycode of each label, RFC 3492)" \
		"$("$SEND" -R "$DNS" -T 2 -M "$label.test" | sed -n 2p)"
	check "Punycode: one character more, an A-label of 66 octets: 553 5.1.2, exit 68" \
		"68|  553 5.1.2 ${label}国.test is not a valid domain name" \
		"$("$SEND" -R "$DNS" -M "${label}国.test" >"$T/intlpuny/long"; echo $?)|$(sed -n 2p "$T/intlpuny/long")"
	stop_pid "$DPID"
}

t_intl_idn() {
	local fake_pid out rc before kind bad
	start_server "$T/intlidn.log" "$TOP/tests/fakesmtp" -a 127.0.0.31 -p 0 -o "$T/intlidn.in" utf8
	fake_pid=$SPID
	local P=$PORT
	start_dnsd intlidn <<<"$IDN_ZONE"
	out=$("$SEND" -R "$DNS" -P "$P" -M 例子.测试); rc=$?
	check "-M 例子.测试: both forms, then the MX of the A-label name" "0|route to 例子.测试
  例子.测试 is xn--fsqu00a.xn--0zwm56d in DNS (A-labels: the Punycode of each label, RFC 3492)
  MX records of xn--fsqu00a.xn--0zwm56d, best first:
    10 mx.xn--fsqu00a.xn--0zwm56d: 127.0.0.31" "$rc|$out"
	before=$(wc -l <"$T/intlidn/dns.log")
	out=$(printf 'Subject: s\n\nx\n' | "$SEND" -v -R "$DNS" -P "$P" -T 5 -H c.test -f s@c.test 张三@例子.测试 2>&1); rc=$?
	check "张三@例子.测试: routed by its A-labels (-v and the DNS server's log), RCPT as written, sent" \
		"0|1|1|1|RCPT TO:<张三@例子.测试>" \
		"$rc|$(echo "$out" | grep -c '^smtp_send: 例子.测试 is xn--fsqu00a.xn--0zwm56d in DNS')|$(echo "$out" | grep -c '^smtp_send: dns: xn--fsqu00a.xn--0zwm56d MX? -> ok (1 records)')|$(tail -n +"$((before + 1))" "$T/intlidn/dns.log" | grep -c 'query xn--fsqu00a.xn--0zwm56d 15 udp')|$(grep -a '^RCPT' "$T/intlidn.in" | tr -d '\r')"
	# RFC 3629: each kind of byte sequence that is not UTF-8
	while read -r kind bad; do
		before=$(wc -l <"$T/intlidn/dns.log")
		out=$(printf 'Subject: s\n\nx\n' | "$SEND" -R "$DNS" -P "$P" -T 5 -H c.test -f s@c.test "x@$(printf "$bad")例.测试" 2>&1); rc=$?
		check "domain not UTF-8 ($kind): 553 5.1.3, exit 65, no DNS query" \
			"65|smtp_send: <x@${bad}例.测试> failed relay=none reply=\"553 5.1.3 ${bad}例.测试 is not UTF-8, so it names no domain\"|$before" \
			"$rc|$out|$(wc -l <"$T/intlidn/dns.log")"
	done <<'KINDS'
overlong \xc0\xaf
surrogate \xed\xa0\x80
above-U+10FFFF \xf4\x90\x80\x80
stray-continuation \x80
cut-short \xe4\xbd
KINDS
	out=$("$SEND" -R "$DNS" -M "$(printf 'x\xff.test')"); rc=$?
	check "-M with a name that is not UTF-8: 553 5.1.3, exit 65" "65|  -> permanent failure (5.1.3)" "$rc|$(echo "$out" | tail -n 1)"
	out=$(printf 'x\n' | "$SEND" -S 127.0.0.1:9 -T 1 -f s@c.test "$(printf '\xe5\xbc\xa0u\xc2\x9b@x.test')" 2>&1 | cut -d' ' -f2)
	check "logs: UTF-8 as it is, a C1 control (U+009B, a terminal's CSI) escaped" '<张u\xc2\x9b@x.test>' "$out"
	stop_pid "$DPID"
	stop_pid "$fake_pid"
}

t_intl_smtputf8() {
	local out rc
	fake intlutf8 utf8
	out=$(printf 'From: s@c.test\nSubject: ascii\nMessage-ID: <1@c.test>\n\n正文\n' |
		"$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f s@c.test 李四@例子.测试 2>&1); rc=$?
	check "offered: MAIL FROM with BODY=8BITMIME (8-bit body) and SMTPUTF8, RCPT as written; -v says why" \
		"0|MAIL FROM:<s@c.test> SIZE=$(grep -a '^MAIL' "$T/intlutf8.in" | sed 's/.*SIZE=\([0-9]*\).*/\1/') BODY=8BITMIME SMTPUTF8|RCPT TO:<李四@例子.测试>|smtp_send: needs SMTPUTF8: yes (non-ASCII recipient)" \
		"$rc|$(grep -a '^MAIL' "$T/intlutf8.in" | tr -d '\r')|$(grep -a '^RCPT' "$T/intlutf8.in" | tr -d '\r')|$(echo "$out" | grep 'needs SMTPUTF8')"
	: >"$T/intlutf8.in"
	printf 'From: s@c.test\nSubject: 你好\nMessage-ID: <1@c.test>\nMIME-Version: 1.0\n\nascii body\n' |
		"$SEND" -S "127.0.0.1:$PORT" -H c.test -f s@c.test x@p.test 2>/dev/null; rc=$?
	check "offered, UTF-8 only in the header: SMTPUTF8 without BODY=8BITMIME; the header sent raw" \
		"0|SMTPUTF8|1" \
		"$rc|$(grep -a '^MAIL' "$T/intlutf8.in" | tr -d '\r' | sed 's/.*SIZE=[0-9]* //')|$(grep -a -c '^Subject: 你好' "$T/intlutf8.in")"
	stop_pid "$SPID"

	fake intlold plain
	out=$(printf 'From: s@c.test\nSubject: ascii\n\nx\n' |
		"$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f s@c.test 李四@p.test wang@p.test 2>&1); rc=$?
	check "not offered: the non-ASCII recipient fails with 553 5.6.7 (no address downgrade), the other is sent (69)" \
		"69|smtp_send: <李四@p.test> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"553 5.6.7 non-ASCII address, server does not offer SMTPUTF8\"|smtp_send: <wang@p.test> sent|RCPT TO:<wang@p.test>|0" \
		"$rc|$(echo "$out" | grep '李四@p.test> failed')|$(echo "$out" | grep -o '^smtp_send: <wang@p.test> sent')|$(grep -a '^RCPT' "$T/intlold.in" | tr -d '\r')|$(LC_ALL=C grep -a -c $'[\x80-\xff]' "$T/intlold.in")"
	: >"$T/intlold.in"
	out=$(printf 'Subject: ascii\n\nx\n' | "$SEND" -S "127.0.0.1:$PORT" -H c.test -f 张三@例子.测试 wang@p.test 2>&1); rc=$?
	check "not offered, a non-ASCII sender: every recipient fails with 553 5.6.7, no MAIL is sent" \
		"69|smtp_send: <wang@p.test> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"553 5.6.7 non-ASCII sender, server does not offer SMTPUTF8\"|0" \
		"$rc|$out|$(grep -a -c '^MAIL' "$T/intlold.in")"
	stop_pid "$SPID"
}

t_intl_downgrade() {
	local out rc d=$T/intldown
	mkdir -p "$d"
	fake intldown plain
	printf '%s\n' 'From: 张三 <zs@c.test>' 'To: "李 四" <li@p.test>, wang@p.test' 'Cc: 朋友: a@p.test, "Dr. 王" <b@p.test>;' \
		'Reply-To: 张三 <zs@home.test>' 'Subject: Re: 你好，世界！这是一封很长的中文邮件的主题，用来测试折行。' \
		'X-Mailer: 中文邮件 1.0' 'Message-ID: <d1@c.test>' 'Date: Sat, 28 Nov 2026 10:00:00 +0800' 'MIME-Version: 1.0' \
		'Content-Type: text/plain; charset=UTF-8' '' 'ascii body' >"$d/in"
	out=$("$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f zs@c.test x@p.test <"$d/in" 2>&1); rc=$?
	data_to "$T/intldown.in" "$d/got"
	printf '%s\n' 'From: =?UTF-8?B?5byg5LiJ?= <zs@c.test>' 'To: =?UTF-8?B?5p2OIOWbmw==?= <li@p.test>, wang@p.test' \
		'Cc: =?UTF-8?B?5pyL5Y+L?=: a@p.test, =?UTF-8?B?RHIuIOeOiw==?= <b@p.test>;' 'Reply-To: =?UTF-8?B?5byg5LiJ?= <zs@home.test>' \
		'Subject: Re: =?UTF-8?B?5L2g5aW977yM5LiW55WM77yB6L+Z5piv5LiA5bCB5b6I6ZW/55qE?=' \
		' =?UTF-8?B?5Lit5paH6YKu5Lu255qE5Li76aKY77yM55So5p2l5rWL6K+V5oqY6KGM44CC?=' \
		'X-Mailer: =?UTF-8?B?5Lit5paH6YKu5Lu2?= 1.0' 'Message-ID: <d1@c.test>' 'Date: Sat, 28 Nov 2026 10:00:00 +0800' \
		'MIME-Version: 1.0' 'Content-Type: text/plain; charset=UTF-8' '' 'ascii body' >"$d/want"
	check "downgrade: the header as sent, byte for byte (display names and unstructured text as RFC 2047 B words)" \
		"0|same" "$rc|$(cmp -s "$d/want" "$d/got" && echo same || diff "$d/want" "$d/got")"
	check "downgrade: -v names it; every byte sent is ASCII; no header line over 77 characters" \
		"smtp_send: header downgraded to RFC 2047 for 127.0.0.1[127.0.0.1]:$PORT|0|yes" \
		"$(echo "$out" | grep 'downgraded')|$(LC_ALL=C grep -a -c $'[\x80-\xff]' "$T/intldown.in")|$([ "$(sed '/^$/q' "$d/got" | longest /dev/stdin)" -le 77 ] && echo yes)"
	if have_python; then
		check "downgrade: Python's email package reads back the original text" \
			"From: 张三 <zs@c.test>
To: 李 四 <li@p.test>, wang@p.test
Cc: 朋友: a@p.test, \"Dr. 王\" <b@p.test>;
Reply-To: 张三 <zs@home.test>
Subject: Re: 你好，世界！这是一封很长的中文邮件的主题，用来测试折行。
X-Mailer: 中文邮件 1.0
--
ascii body" "$(py_read "$d/got" From To Cc Reply-To Subject X-Mailer)"
	else
		skip "downgrade decoded by Python: /usr/bin/python3 is not installed"
	fi
	# what has no downgrade here: 554 5.6.9, and nothing is sent
	: >"$T/intldown.in"
	for bad in 'Reply-To: 张三 (家) <zs@home.test>' 'To: 李四@p.test' 'Message-ID: <你好@c.test>' \
		"$(printf 'Subject: caf\351')" 'Keywords: 中文'; do
		{ printf '%s\n' 'From: zs@c.test' 'Date: Sat, 28 Nov 2026 10:00:00 +0800' 'MIME-Version: 1.0' "$bad"; printf '\nx\n'; } |
			"$SEND" -S "127.0.0.1:$PORT" -H c.test -f zs@c.test x@p.test 2>&1
		echo "exit $?"
	done >"$d/bad"
	check "no downgrade for a comment, an address, a Message-ID, a field not UTF-8, Keywords: 554 5.6.9, exit 69" \
		"$(for f in Reply-To To Message-ID Subject Keywords; do
			echo "smtp_send: <x@p.test> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"554 5.6.9 the $f: field holds non-ASCII text that has no downgrade, server does not offer SMTPUTF8\""
			echo "exit 69"; done)|0" "$(cat "$d/bad")|$(grep -a -c '^DATA' "$T/intldown.in")"
	stop_pid "$SPID"
}

t_intl_qp() {
	local out rc d=$T/intlqp now
	now=$(date +%s)
	mkdir -p "$d"
	fake intlqp no8bit
	{ printf '%s\n' 'From: zs@c.test' 'Subject: qp' 'Message-ID: <q1@c.test>' 'Date: Sat, 28 Nov 2026 10:00:00 +0800' \
		'MIME-Version: 1.0' 'Content-Type: text/plain; charset=UTF-8' 'Content-Transfer-Encoding: 8bit' '' \
		'你好' 'a = b, 100% sure ' '.一行' "$(chars x 70)你好"
	  printf 'tab\t\n'; } >"$d/in"
	out=$("$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f zs@c.test x@p.test <"$d/in" 2>&1); rc=$?
	tr -d '\r' <"$T/intlqp.in" | sed -n '/^DATA$/,/^\.$/p' | sed -e '1d' -e '$d' >"$d/got"
	printf '%s\n' 'From: zs@c.test' 'Subject: qp' 'Message-ID: <q1@c.test>' 'Date: Sat, 28 Nov 2026 10:00:00 +0800' \
		'MIME-Version: 1.0' 'Content-Type: text/plain; charset=UTF-8' 'Content-Transfer-Encoding: quoted-printable' '' \
		'=E4=BD=A0=E5=A5=BD' 'a =3D b, 100% sure=20' '..=E4=B8=80=E8=A1=8C' "$(chars x 70)=E4=" '=BD=A0=E5=A5=BD' \
		'tab=09' >"$d/want"
	check "quoted-printable: the body re-encoded, the old encoding replaced, byte for byte (a leading dot still stuffed)" \
		"0|same|smtp_send: body converted to quoted-printable for 127.0.0.1[127.0.0.1]:$PORT" \
		"$rc|$(cmp -s "$d/want" "$d/got" && echo same || diff "$d/want" "$d/got")|$(echo "$out" | grep 'converted')"
	check "quoted-printable: no 8-bit byte sent, no BODY=8BITMIME, no line over 76" "0|0|yes" \
		"$(LC_ALL=C grep -a -c $'[\x80-\xff]' "$T/intlqp.in")|$(grep -a -c 'BODY=' "$T/intlqp.in")|$([ "$(sed '1,/^$/d' "$d/got" | longest /dev/stdin)" -le 76 ] && echo yes)"
	if have_python; then
		sed 's/^\.\././' "$d/got" >"$d/got.unstuffed"
		check "quoted-printable: Python decodes the body the sender wrote" \
			"$(sed '1,/^$/d' "$d/in")" "$(py_read "$d/got.unstuffed" | sed '1d')"
	else
		skip "quoted-printable decoded by Python: /usr/bin/python3 is not installed"
	fi
	# a queued message with no MIME fields and a Latin-1 body: QP byte for
	# byte, MIME-Version added (the encoding means nothing without it), no charset claimed
	: >"$T/intlqp.in"
	printf 'Subject: latin\n\ncaf\351\n' | put_entry "$d/q" l1 'version 1' 'id l1' 'sender <s@c.test>' \
		"arrival $now" 'attempts 0' 'next 0' 'rcpt <x@p.test>'
	"$SEND" -q "$d/q" -S "127.0.0.1:$PORT" 2>/dev/null; rc=$?
	check "quoted-printable: a queued Latin-1 body, no MIME fields: MIME-Version added, no Content-Type, =E9" \
		"0|Subject: latin
MIME-Version: 1.0
Content-Transfer-Encoding: quoted-printable

caf=E9" "$rc|$(data_of "$T/intlqp.in" | tr -d '\r')"
	# what cannot be converted: 554 5.6.3
	: >"$T/intlqp.in"
	printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n你好\n--b--\n' |
		"$SEND" -S "127.0.0.1:$PORT" -H c.test -f zs@c.test x@p.test >"$d/multi" 2>&1; rc=$?
	printf 'MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n你好\n' |
		"$SEND" -S "127.0.0.1:$PORT" -H c.test -f zs@c.test x@p.test >>"$d/multi" 2>&1
	check "multipart, or a body that claims base64: 554 5.6.3 (69), no DATA" \
		"69|smtp_send: <x@p.test> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"554 5.6.3 8-bit message, server does not offer 8BITMIME\"
smtp_send: <x@p.test> failed relay=127.0.0.1[127.0.0.1]:$PORT reply=\"554 5.6.3 8-bit message, server does not offer 8BITMIME\"|0" \
		"$rc|$(cat "$d/multi")|$(grep -a -c '^DATA' "$T/intlqp.in")"
	stop_pid "$SPID"
}

t_intl_submit() {
	local d=$T/intlsub
	mkdir -p "$d"
	fake intlsub utf8
	# sub NAME: stdin to the fake server; the header it got, Date: and Message-ID: left out
	sub() {
		: >"$T/intlsub.in"
		"$SEND" -v -S "127.0.0.1:$PORT" -H c.test -f zs@c.test x@p.test >"$d/$1.log" 2>&1
		data_of "$T/intlsub.in" | tr -d '\r' | sed '/^$/q' | grep -v -e '^Date:' -e '^Message-ID:' >"$d/$1"
	}
	printf 'Subject: 你好\n\n正文\n' | sub utf8
	check "submission, UTF-8 without MIME-Version: the three MIME fields added, and -v says so" \
		"Subject: 你好
From: <zs@c.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit|1" "$(cat "$d/utf8")|$(grep -c 'MIME-Version, Content-Type and Content-Transfer-Encoding added' "$d/utf8.log")"
	printf 'Subject: latin\n\ncaf\351\n' | sub latin
	check "submission, 8-bit bytes that are not UTF-8: no charset claimed, nothing added" \
		"Subject: latin
From: <zs@c.test>" "$(cat "$d/latin")"
	printf 'Content-Type: text/html; charset=UTF-8\nSubject: 你好\n\n<p>正文</p>\n' | sub html
	check "submission, a Content-Type but no MIME-Version: MIME-Version and the encoding added, the type kept" \
		"Content-Type: text/html; charset=UTF-8
Subject: 你好
From: <zs@c.test>
MIME-Version: 1.0
Content-Transfer-Encoding: 8bit" "$(cat "$d/html")"
	printf 'MIME-Version: 1.0\nSubject: 你好\n\n正文\n' | sub mime
	printf 'Subject: ascii\n\nbody\n' | sub ascii
	check "submission: with MIME-Version, or all ASCII: nothing added" "0|0" \
		"$(grep -c -e '^Content-' "$d/mime")|$(grep -c -e '^MIME-Version' -e '^Content-' "$d/ascii")"
	stop_pid "$SPID"
}

t_intl_queue() {
	local d=$T/intlq q=$T/intlq/queue rc now out
	now=$(date +%s)
	mkdir -p "$d"
	fake intlq utf8
	put_entry "$q" v2 'version 2' 'id v2' 'smtputf8 yes' 'sender <s@c.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <x@p.test>' <<<$'Subject: ascii\n\nx'
	out=$("$SEND" -v -q "$q" -S "127.0.0.1:$PORT" 2>&1); rc=$?
	check "a version 2 entry with smtputf8 yes: MAIL FROM carries SMTPUTF8, -v says why" \
		"0|SMTPUTF8|smtp_send: v2: needs SMTPUTF8: yes (the queue entry asks for it)" \
		"$rc|$(grep -a '^MAIL' "$T/intlq.in" | tr -d '\r' | sed 's/.*SIZE=[0-9]* //')|$(echo "$out" | grep 'needs SMTPUTF8')"
	put_entry "$q" v3 'version 3' 'id v3' 'sender <s@c.test>' "arrival $now" 'rcpt <x@p.test>' <<<$'Subject: v3\n\nx'
	out=$("$SEND" -q "$q" -S "127.0.0.1:$PORT" 2>&1)
	check "a version 3 entry: malformed, left alone" "smtp_send: v3: queue: malformed entry (not version 1 or 2), left alone|v3" \
		"$(echo "$out" | grep malformed)|$(ls "$q/entries")"
	rm -f "$q/entries/v3"
	stop_pid "$SPID"

	# RFC 6531 3.5: a recipient the next hop cannot take, 553 5.6.7, is bounced
	start_smtpd intlhome -a 127.0.0.32 -n mx.home.test -m mail -d home.test
	local home=$SPID P=$PORT b
	mkdir -p "$T/intlhome/mail/sender"
	start_server "$d/old.log" "$TOP/tests/fakesmtp" -a 127.0.0.33 -p "$P" -o "$d/old.in" plain
	local old=$SPID
	start_dnsd intlqdns <<<'home.test MX 10 mx.home.test
mx.home.test A 127.0.0.32
old.test MX 10 mx.old.test
mx.old.test A 127.0.0.33
later.test SERVFAIL'
	put_entry "$q" b1 'version 1' 'id b1' 'sender <sender@home.test>' "arrival $now" 'attempts 0' 'next 0' \
		'rcpt <李四@old.test>' 'rcpt <x@later.test>' <<<$'Subject: to li\n\nx'
	"$SEND" -q "$q" -R "$DNS" -P "$P" -H mx.relay.test -T 3 2>"$d/run"; rc=$?
	b=$(only_file "$T/intlhome/mail/sender/new")
	check "a 553 5.6.7 bounce: Status 5.6.7, our words, the UTF-8 address in an 8-bit part" \
		"75|Status: 5.6.7|Final-Recipient: rfc822; 李四@old.test|1|2|0" \
		"$rc|$(grep '^Status:' "$b")|$(grep '^Final-Recipient:' "$b")|$(sed -n '/^<李四@old.test>: permanent error:/,/^$/p' "$b" | tr -s '\n ' '  ' | grep -c "553 5.6.7 non-ASCII address, server does not offer SMTPUTF8 (host mx.old.test\[127.0.0.33\]:$P)")|$(grep -c '^Content-Transfer-Encoding: 8bit$' "$b")|$(grep -a -c 'RCPT TO:<李' "$d/old.in")"
	check "the entry rewritten for the deferred recipient is version 2" "version 2|rcpt <x@later.test>" \
		"$(head -n 1 "$q/entries/b1")|$(grep '^rcpt' "$q/entries/b1")"
	if have_python; then
		check "the bounce's first part is declared UTF-8 and reads back" "utf-8|<李四@old.test>: permanent error: 553 5.6.7" \
			"$("$PY" -c 'import email, email.policy, sys
part = list(email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default).walk())[1]
print(part.get_content_charset() + "|" + [l for l in part.get_content().split("\n") if l.startswith("<")][0][:41])' "$b")"
	else
		skip "the bounce read by Python: /usr/bin/python3 is not installed"
	fi
	rm -f "$q/entries/"*
	# a bounce to a non-ASCII sender needs SMTPUTF8, and its entry says so
	# (expired at once; the smarthost is down, so the bounce stays queued)
	put_entry "$q" b2 'version 2' 'id b2' 'sender <张三@例子.测试>' "arrival $((now - 100))" 'attempts 0' 'next 0' \
		'rcpt <x@p.test>' <<<$'Subject: old\n\nx'
	"$SEND" -q "$q" -S 127.0.0.1:9 -H mx.relay.test -e 10 -T 3 2>"$d/run2"
	b=$(grep -l '^origin smtp_send' "$q"/entries/* 2>/dev/null | head -n 1)
	check "the bounce for 张三@例子.测试: version 2, smtputf8 yes, rcpt as written" \
		"version 2|smtputf8 yes|rcpt <张三@例子.测试>" \
		"$(head -n 1 "$b")|$(grep '^smtputf8' "$b")|$(grep '^rcpt' "$b")"
	stop_pid "$DPID"
	stop_pid "$old"
	stop_pid "$home"
}

# ---- smtpd ----------------------------------------------------------------------

t_intl_smtpd() {
	local d=$T/intlsd out f
	start_smtpd intlsd -m mail -d 例子.测试 -d example.org
	mkdir -p "$d/mail/张三" "$d/mail/alice"
	out=$(printf 'EHLO c\nQUIT\n' | smtp "$PORT" | norm | grep -c '^250-SMTPUTF8$')
	check "EHLO offers SMTPUTF8" "1" "$out"
	out=$(printf '%s\n' 'EHLO c' 'MAIL FROM:<李四@例子.测试>' 'MAIL FROM:<li@example.org>' 'RCPT TO:<张三@例子.测试>' \
		'RCPT TO:<alice@例子.测试>' 'RCPT TO:<alice@xn--fsqu00a.xn--0zwm56d>' 'RSET' 'MAIL FROM:<李四@例子.测试> SMTPUTF8' 'RCPT TO:<张三@例子.测试>' \
		'RCPT TO:<王五@例子.测试>' 'DATA' 'Subject: 你好' '' '正文' '.' 'QUIT' | smtp "$PORT" -l | norm | sed 1,8d)
	check "SMTPUTF8: a UTF-8 address without it 553 5.6.7 (sender, recipient, U-label domain; its A-labels are fine); with it, UTF-8 local parts and U-labels, echoed as they are" \
		"553 5.6.7 Non-ASCII address needs SMTPUTF8
250 2.1.0 Sender <li@example.org> OK
553 5.6.7 Non-ASCII address needs SMTPUTF8
553 5.6.7 Non-ASCII address needs SMTPUTF8
250 2.1.5 Recipient <alice@xn--fsqu00a.xn--0zwm56d> OK
250 2.0.0 Ok
250 2.1.0 Sender <李四@例子.测试> OK
250 2.1.5 Recipient <张三@例子.测试> OK
550 5.1.1 <王五@例子.测试>: User unknown
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
221 2.0.0 mx.test closing connection" "$out"
	f=$(only_file "$d/mail/张三/new")
	check "the message of 张三@例子.测试 is in the Maildir ROOT/张三/, Received: says with UTF8SMTP (RFC 6531 4.3)" \
		"1|Return-Path: <李四@例子.测试>
Delivered-To: 张三@例子.测试
Received: from c ([127.0.0.1])
	by mx.test with UTF8SMTP id <ID@mx.test>
	for <张三@例子.测试>; DATE
Subject: 你好

正文" "$(count_files "$d/mail/张三/new")|$(sed -e 's/id <[^@]*@/id <ID@/' -e 's/>; .*/>; DATE/' "$f")"
	# only ASCII letters are folded: ROOT/Éva is no mailbox for éva (no
	# Unicode case folding), ROOT/Zhang is one for zhang
	mkdir -p "$d/mail/Éva" "$d/mail/Zhang"
	out=$(printf '%s\n' 'EHLO c' 'MAIL FROM:<a@example.org> SMTPUTF8' 'RCPT TO:<éva@example.org>' 'RCPT TO:<Éva@example.org>' \
		'RCPT TO:<zhang@example.org>' 'QUIT' | smtp "$PORT" -l | norm | sed 1,9d)
	check "case: ASCII letters only; no Unicode case folding or normalisation" \
		"550 5.1.1 <éva@example.org>: User unknown
250 2.1.5 Recipient <Éva@example.org> OK
250 2.1.5 Recipient <zhang@example.org> OK
221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
}

t_intl_bytes() {
	# RFC 3629: each kind of byte sequence that is not UTF-8 gets 501 5.5.4,
	# wherever it is and whatever SMTPUTF8 says; UTF-8 outside an address
	# is 8-bit text in a command as before: 500 5.5.2
	local kind bad out want='' line
	start_smtpd intlbytes -m mail
	while read -r kind bad; do
		out=$(printf "EHLO c\r\nMAIL FROM:<a${bad}@b.test> SMTPUTF8\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<x@${bad}b.test>\r\nNOOP ${bad}\r\nHELO ${bad}\r\nQUIT\r\n" |
			"$CHAT" -l 127.0.0.1 "$PORT" | norm | sed 1,8d)
		check "not UTF-8 ($kind): 501 5.5.4 in MAIL, RCPT, NOOP, HELO" "501 5.5.4 Not UTF-8: a stray, overlong or surrogate byte sequence (RFC 3629)
250 2.1.0 Sender <a@b.test> OK
501 5.5.4 Not UTF-8: a stray, overlong or surrogate byte sequence (RFC 3629)
501 5.5.4 Not UTF-8: a stray, overlong or surrogate byte sequence (RFC 3629)
501 5.5.4 Not UTF-8: a stray, overlong or surrogate byte sequence (RFC 3629)
221 2.0.0 mx.test closing connection" "$out"
	done <<'KINDS'
overlong-slash \xc0\xaf
overlong-3-byte \xe0\x80\xaf
surrogate \xed\xa0\x80
above-U+10FFFF \xf4\x90\x80\x80
byte-F5 \xf5\x80\x80\x80
stray-continuation \x80
cut-short \xe4\xbd
KINDS
	for line in 'NOOP 你好' 'VRFY 张三' 'VRFY <张三@例子.测试>' 'NOOP <你好>' 'MAIL FROM:<a@b.test> SIZE=你好' \
		'MAIL 你好FROM:<a@b.test>' 'HELO 例子.测试'; do
		want+="500 5.5.2 Commands are 7-bit ASCII without NUL bytes"$'\n'
		printf '%s\r\n' "$line"
	done >"$T/intlbytes/lines"
	out=$({ printf 'EHLO c\r\n'; cat "$T/intlbytes/lines"; printf 'QUIT\r\n'; } | "$CHAT" -l 127.0.0.1 "$PORT" | norm | sed 1,8d)
	check "UTF-8 outside the address of MAIL or RCPT (in VRFY's <...> too): 500 5.5.2, as before SMTPUTF8" \
		"${want}221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
	# UTF-8, yet no address may hold them: C1 controls (RFC 5198 2), the
	# separators that some readers take for line ends, bidi overrides
	start_smtpd intlunsafe -m mail -A
	local d=$T/intlunsafe
	mkdir -p "$d/mail"
	for bad in '\xc2\x85' '\xc2\x9b' '\xe2\x80\xa8' '\xe2\x80\xa9' '\xe2\x80\xae' '\xe2\x81\xa6'; do
		out=$(printf "EHLO c\r\nMAIL FROM:<a${bad}b@b.test> SMTPUTF8\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<x${bad}y@localhost>\r\nRCPT TO:<张三@localhost>\r\nDATA\r\nm\r\n.\r\nQUIT\r\n" |
			"$CHAT" -l 127.0.0.1 "$PORT" | norm | sed 1,8d | sed 's/<[^>]*@[^>]*>/<ADDR>/')
		check "UTF-8 $bad in an address: 501 in MAIL and RCPT, 张三 still fine" "501 5.1.7 Bad sender address syntax
250 2.1.0 Sender <ADDR> OK
501 5.1.3 Bad recipient address syntax
250 2.1.5 Recipient <ADDR> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
221 2.0.0 mx.test closing connection" "$out"
	done
	check "-A: no mailbox made for any of them" "张三" "$(ls "$d/mail" | tr '\n' ' ' | sed 's/ $//')"
	stop_pid "$SPID"
}

t_intl_domains() {
	# RFC 5890 2.3.2.4: a U-label and its A-label are one label (no relaying
	# here: a domain that is not local gets 550, not a 250 for the queue)
	local dom opt out
	for opt in 例子.测试 xn--fsqu00a.xn--0zwm56d XN--FSQU00A.xn--0ZWM56D; do
		start_smtpd intldom -m mail -d "$opt" -r 192.0.2.0/24
		mkdir -p "$T/intldom/mail/bob"
		out=$(for dom in 例子.测试 xn--fsqu00a.xn--0zwm56d Xn--FSQU00A.XN--0zwm56d 例子.xn--0zwm56d 例字.测试; do
			printf 'EHLO c\nMAIL FROM:<a@b.test> SMTPUTF8\nRCPT TO:<bob@%s>\nQUIT\n' "$dom" | smtp "$PORT" -l | codes | sed -n 10p
		done | tr '\n' ' ')
		check "-d $opt: bob@ each form of the domain is local, another name is not" "250 250 250 250 550 " "$out"
		stop_pid "$SPID"
	done
	(cd "$T" && timeout 5 "$TOP/smtpd" -p 0 -d "$(printf 'x\xff.test')" 2>"$T/intldom/badd"); out=$?
	check "-d with a name that is not UTF-8: refused at start" "smtpd: -d $(printf 'x\xff.test'): not a domain name (UTF-8, labels of 63 octets)|2" \
		"$(head -n 1 "$T/intldom/badd")|$out"
}

t_intl_withhold() {
	local out ext d=$T/intlwh
	start_smtpd intlwh -m mail -E SMTPUTF8 -E 8bitmime
	mkdir -p "$d/mail/bob"
	out=$(printf '%s\n' 'EHLO c' 'MAIL FROM:<a@b.test> SMTPUTF8' 'MAIL FROM:<a@b.test> BODY=8BITMIME' \
		'MAIL FROM:<张三@b.test>' 'MAIL FROM:<a@b.test> SIZE=100' 'QUIT' | smtp "$PORT" -l | norm)
	check "-E SMTPUTF8 -E 8BITMIME, an old server: neither offered; their parameters 555 as unknown; a UTF-8 address 553 5.6.7" \
		"220 mx.test ESMTP
250-mx.test Hello c [127.0.0.1]
250-PIPELINING
250-SIZE 10485760
250-ENHANCEDSTATUSCODES
250 HELP
555 5.5.4 Unsupported parameter SMTPUTF8
555 5.5.4 Unsupported parameter BODY=8BITMIME
553 5.6.7 Non-ASCII address needs SMTPUTF8
250 2.1.0 Sender <a@b.test> OK
221 2.0.0 mx.test closing connection" "$out"
	stop_pid "$SPID"
	start_smtpd intlwh2 -m mail -E SIZE -E HELP -E ENHANCEDSTATUSCODES
	out=$(printf '%s\n' 'EHLO c' 'HELP' 'MAIL FROM:<a@b.test> SIZE=100' 'MAIL FROM:<a@b.test>' 'QUIT' | smtp "$PORT" -l | norm)
	check "-E SIZE -E HELP -E ENHANCEDSTATUSCODES: SIZE= 555, HELP 500, replies without x.y.z" \
		"220 mx.test ESMTP
250-mx.test Hello c [127.0.0.1]
250-PIPELINING
250-8BITMIME
250 SMTPUTF8
500 Command unrecognized
555 Unsupported parameter SIZE=100
250 Sender <a@b.test> OK
221 mx.test closing connection" "$out"
	stop_pid "$SPID"
	(cd "$T" && timeout 5 "$TOP/smtpd" -p 0 -E STARTTLS 2>"$d/bade"); out=$?
	check "-E with a keyword we do not offer: refused at start (exit 2), the offered ones listed" \
		"smtpd: -E STARTTLS: not an extension this server offers (PIPELINING SIZE 8BITMIME SMTPUTF8 ENHANCEDSTATUSCODES HELP)|2" \
		"$(head -n 1 "$d/bade")|$out"
	# PIPELINING withheld: each reply its own write(), where a pipelining
	# server answers a group in one (strace counts the session's writes)
	if ! command -v strace >/dev/null; then
		skip "-E PIPELINING, one write per reply: strace is not installed"
		return
	fi
	local ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:detect_leaks=0}   # LeakSanitizer cannot run under ptrace
	export ASAN_OPTIONS
	for ext in none PIPELINING; do
		if [ "$ext" = none ]; then start_smtpd "intlpipe$ext" -m mail; else start_smtpd "intlpipe$ext" -m mail -E "$ext"; fi
		mkdir -p "$T/intlpipe$ext/mail/bob"
		strace -f -e trace=write -o "$T/intlpipe$ext/trace" -p "$SPID" 2>"$T/intlpipe$ext/strace.err" & local tracer=$!
		PIDS+=("$tracer")
		poll 200 grep -qs 'attached' "$T/intlpipe$ext/strace.err"
		printf 'EHLO c\nMAIL FROM:<a@b.test>\nRCPT TO:<bob@localhost>\nRCPT TO:<nobody@localhost>\nDATA\n' |
			sed 's/$/\r/' | "$CHAT" -w 127.0.0.1 "$PORT" >"$T/intlpipe$ext/out" 2>&1
		poll 100 grep -q disconnect "$T/intlpipe$ext/log"
		stop_pid "$tracer"
		grep -E 'write\([0-9]+, "(2[0-9][0-9]|3[0-9][0-9]|5[0-9][0-9])[ -]' "$T/intlpipe$ext/trace" | grep -v 'smtpd:' | wc -l | tr -d ' ' >"$T/intlpipe$ext/writes"
		stop_pid "$SPID"
	done
	check "PIPELINING offered: greeting, then EHLO and the group answered in 2 writes at most; -E PIPELINING: one write per reply (6)" \
		"yes|6" "$([ "$(cat "$T/intlpipenone/writes")" -le 3 ] && echo yes || cat "$T/intlpipenone/writes")|$(cat "$T/intlpipePIPELINING/writes")"
}

t_intl_relay() {
	# smtpd -> queue (version 2, smtputf8 yes) -> smtp_send -q -> smtpd, all
	# over sockets; and the same message to an old server: 553 5.6.7, bounced
	local q=$T/intlrel/queue e out rc P
	start_smtpd intlrel -a 127.0.0.41 -n mx.relay.test -m mail -d relay.test
	local relay=$SPID
	P=$PORT
	mkdir -p "$T/intlrel/mail/sender"
	start_smtpd intlnew -a 127.0.0.42 -p "$P" -n mx.xn--fsqu00a.xn--0zwm56d -m mail -d 例子.测试
	local new=$SPID
	mkdir -p "$T/intlnew/mail/张三"
	start_smtpd intlold -a 127.0.0.43 -p "$P" -n mx.old.test -m mail -d old.test -E SMTPUTF8 -E 8BITMIME
	local old=$SPID
	mkdir -p "$T/intlold/mail/wang"
	start_dnsd intlreldns <<<'xn--fsqu00a.xn--0zwm56d MX 10 mx.xn--fsqu00a.xn--0zwm56d
mx.xn--fsqu00a.xn--0zwm56d A 127.0.0.42
old.test MX 10 mx.old.test
mx.old.test A 127.0.0.43
relay.test MX 10 mx.relay.test
mx.relay.test A 127.0.0.41'
	out=$(printf '%s\n' 'EHLO c' 'MAIL FROM:<sender@relay.test> SMTPUTF8' 'RCPT TO:<张三@例子.测试>' 'RCPT TO:<李四@old.test>' \
		'DATA' 'Subject: 你好' '' '正文' '.' 'QUIT' | SMTP_HOST=127.0.0.41 smtp "$P" -l | codes | tr '\n' ' ')
	e=$(ls "$q/entries")
	check "smtpd queues the SMTPUTF8 message: version 2, smtputf8 yes, the UTF-8 recipients as written" \
		"220 250- 250- 250- 250- 250- 250- 250 250 250 250 354 250 221 |version 2|smtputf8 yes|rcpt <张三@例子.测试>
rcpt <李四@old.test>" "$out|$(head -n 1 "$q/entries/$e")|$(grep '^smtputf8' "$q/entries/$e")|$(grep '^rcpt' "$q/entries/$e")"
	"$SEND" -v -q "$q" -R "$DNS" -P "$P" -H mx.relay.test -T 5 2>"$T/intlrel/run"; rc=$?
	check "the queue run: 张三@例子.测试 sent with SMTPUTF8 by its A-label route; 李四@old.test 553 5.6.7 at the old server, bounced home" \
		"0|1|1|1|1|1|Status: 5.6.7" \
		"$rc|$(grep -c "$e: C: MAIL FROM:<sender@relay.test> SIZE=[0-9]* BODY=8BITMIME SMTPUTF8" "$T/intlrel/run")|$(grep -c "<张三@例子.测试> sent relay=mx.xn--fsqu00a.xn--0zwm56d\[127.0.0.42\]:$P" "$T/intlrel/run")|$(grep -c "<李四@old.test> failed relay=mx.old.test\[127.0.0.43\]:$P reply=\"553 5.6.7 non-ASCII address, server does not offer SMTPUTF8\"" "$T/intlrel/run")|$(count_files "$T/intlnew/mail/张三/new")|$(count_files "$T/intlrel/mail/sender/new")|$(grep -h '^Status:' "$T"/intlrel/mail/sender/new/*)"
	check "at the next hop: with UTF8SMTP, two Received: lines, the header as sent" "2|2|Subject: 你好" \
		"$(grep -c '^Received:' "$(only_file "$T/intlnew/mail/张三/new")")|$(grep -c 'with UTF8SMTP' "$(only_file "$T/intlnew/mail/张三/new")")|$(grep '^Subject' "$(only_file "$T/intlnew/mail/张三/new")")"
	stop_pid "$DPID"
	stop_pid "$old"
	stop_pid "$new"
	stop_pid "$relay"
}

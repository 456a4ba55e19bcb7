# shellcheck shell=bash
# tests/groups/intl.sh, sourced by test.sh
# Chinese mail end to end (issue 10): internationalized domains (A-labels,
# Punycode, RFC 3492 7.1), SMTPUTF8 in smtp_send, UTF-8 in the header and
# its RFC 2047 downgrade, quoted-printable for a server without 8BITMIME,
# the MIME fields of a submission, the queue entry's smtputf8 line.  What
# a server received is checked byte for byte, and decoded again by an
# independent reader, Python's email package.
# Groups: intl_punycode intl_idn intl_smtputf8 intl_downgrade intl_qp
#         intl_submit intl_queue
TEST_GROUPS+=(intl_punycode intl_idn intl_smtputf8 intl_downgrade intl_qp intl_submit intl_queue)

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

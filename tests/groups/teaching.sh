# shellcheck shell=bash
# tests/groups/teaching.sh, sourced by test.sh
# the teaching layer: make demo, the lab, the ladder, NOTES.md's figures
# Groups: demo demo_zh lab notes by_hand
TEST_GROUPS+=(demo demo_zh lab notes by_hand)

# ---- tests: the teaching layer ------------------------------------------------------

# Processes whose working directory is under DIR (the lab's servers run
# in their host directories).
procs_in() {
	local f n=0
	for f in /proc/[0-9]*/cwd; do
		case $(readlink "$f" 2>/dev/null) in "$1"/*) n=$((n + 1)) ;; esac
	done
	echo $n
}

# A ladder reduced to its arrows, one per line: "FROM->TO label" (FROM-xTO
# for a refused connection), the actors found by column, the batch
# bracket dropped and the label cut at its first space.
ladder_arrows() {
	awk 'NR > 3 {
		n = split("laptop mail dns mx1 mx2", actor, " ")
		a = index($0, "-"); if (a == 0) next
		line = substr($0, 1, 52); lab = substr($0, 56)
		first = -1; last = -1
		for (i = 0; i < 5; i++) { c = substr(line, i * 12 + 4, 1); p[i] = i * 12 + 4 }
		for (i = 0; i < 5; i++) {
			left = (i > 0) ? substr(line, p[i] - 1, 1) : " "
			right = (i < 4) ? substr(line, p[i] + 1, 1) : " "
			if (left ~ /[->X]/ || right ~ /[-<X]/) { if (first < 0) first = i; last = i }
		}
		sub(/ .*/, "", lab)
		if (index(line, "<")) print actor[last + 1] "->" actor[first + 1] " " lab
		else print actor[first + 1] (index(line, "X") ? "-x" : "->") actor[last + 1] " " lab
	}'
}

t_demo() {
	local out rc ladder
	out=$(LAB_DIR=$T/demo LAB_PORT=0 LAB_DNS_PORT=0 ./lab/lab.sh demo 2>&1); rc=$?
	check "make demo: the mail arrives, exit 0" "0|Result: the mail arrived (1 message in bob's Maildir)." \
		"$rc|$(echo "$out" | tail -n 1)"
	check "demo: eight numbered steps" "1 2 3 4 5 6 7 8" \
		"$(echo "$out" | sed -n 's/^Step \([0-9]\)\..*/\1/p' | tr '\n' ' ' | sed 's/ $//')"
	check "demo: the route shows the CNAME and both MX by preference" "    |   cs.example.net is an alias (CNAME) for example.net
    |     10 mx1.example.net: 127.0.0.3
    |     20 mx2.example.net: 127.0.0.4" "$(echo "$out" | grep -E 'alias \(CNAME\)|^    \|     [0-9]+ mx' | head -n 3)"
	check "demo: the best MX is down, the fallback shows" "    | trying mx1.example.net (preference 10)
    | trying mx2.example.net (preference 20)" "$(echo "$out" | grep 'trying mx')"
	check "demo: two Received: lines in bob's copy, newest first" \
		"    | Received: from mail.example.org ([127.0.0.1])
    | Received: from alice-laptop.example.org ([127.0.0.1])" "$(echo "$out" | sed -n '/^Step 6/,$p' | grep '| Received:')"
	check "demo: PIPELINING and the doubled dot explained after the submission" \
		"        PIPELINING: MAIL, RCPT and DATA went out in one write, before any reply (RFC 2920).
        \"..\": the message's line \".\" was sent with a dot added, so it could not end the data (RFC 5321 4.5.2)." \
		"$(echo "$out" | sed -n '/^Step 2/,/^Step 3/p' | grep -E '^        (PIPELINING|"\.\.")')"
	check "demo: envelope (信封) and header (信头) side by side at the queue step" \
		"        envelope (信封): what servers act on   header (信头): what people read
        MAIL FROM:<alice@example.org>          From: Alice <alice@example.org>
        RCPT TO:<bob@cs.example.net>           To: Bob <bob@cs.example.net>
                                               Subject: Hello from the lab" \
		"$(echo "$out" | sed -n '/^Step 3/,/^Step 4/p' | sed -n '/envelope (信封)/,/^$/p' | sed '$d')"
	check "demo: every process it started is stopped, and it says so" "0|3" \
		"$(procs_in "$T/demo")|$(echo "$out" | sed -n '/^Step 8/,$p' | grep -c '| lab: stopped ')"

	# the ladder (Step 7): actors, arrows in time order, the MX fallback
	ladder=$(echo "$out" | sed -n '/^Step 7/,/^Step 8/p' | sed -n 's/^    | //p')
	check "ladder: one column per actor" "alice's     mail.       DNS         mx1.        mx2.
laptop      example.org 127.0.0.1   example.net example.net" "$(echo "$ladder" | head -n 2)"
	check "ladder: the journey's arrows, in time order" "laptop->mail connect
mail->laptop 220
laptop->mail EHLO
mail->laptop 250
laptop->mail MAIL
laptop->mail RCPT
laptop->mail DATA
mail->laptop 250
mail->laptop 250
mail->laptop 354
laptop->mail the
mail->laptop 250
laptop->mail QUIT
mail->laptop 221
mail->dns cs.example.net
dns->mail ok,
mail->dns example.net
dns->mail ok,
mail->dns mx1.example.net
dns->mail ok,
mail->dns mx1.example.net
dns->mail ok,
mail->dns mx2.example.net
dns->mail ok,
mail->dns mx2.example.net
dns->mail ok,
mail-xmx1 connect:
mail->mx2 connect
mx2->mail 220
mail->mx2 EHLO
mx2->mail 250
mail->mx2 MAIL
mail->mx2 RCPT
mail->mx2 DATA
mx2->mail 250
mx2->mail 250
mx2->mail 354
mail->mx2 the
mx2->mail 250
mail->mx2 QUIT
mx2->mail 221" "$(echo "$ladder" | ladder_arrows)"
	check "ladder: the pipelined MAIL, RCPT, DATA are one batch, twice" "2" \
		"$(echo "$ladder" | grep -c '| + DATA   (one batch: PIPELINING)')"
	check "ladder: the CNAME shows in the first DNS answer" "1" \
		"$(echo "$ladder" | grep -c '^   |           |<----------|.* ok, 1 record: CNAME example.net$')"
	check "ladder: the refused connection ends in an X on mx1's line" \
		"   |           |----------------------X|           |   connect: Connection refused" \
		"$(echo "$ladder" | grep 'Connection refused' | sed 's/:[0-9]*: connect/: connect/')"
	check "ladder: from the servers' logs alone (no client transcripts) the sessions still show" \
		"2|(no client transcripts in client/: DNS questions and refused connections are not shown)" \
		"$(mv "$T/demo/client" "$T/demo/client.off" && ./lab/ladder.sh "$T/demo" | grep -c 'connect (TCP, from 127.0.0.1)')|$(./lab/ladder.sh "$T/demo" | tail -n 1)"
	mv "$T/demo/client.off" "$T/demo/client"
}

# make demo-zh (issue 10): the Chinese message to a server with SMTPUTF8
# and to an old one, every step shown, both read back alike.
t_demo_zh() {
	local out rc
	out=$(LAB_DIR=$T/demozh LAB_PORT=0 LAB_DNS_PORT=0 ./lab/lab.sh demo-zh 2>&1); rc=$?
	check "make demo-zh: both messages arrive and read the same, exit 0" \
		"0|Result: both arrived (李四's with SMTPUTF8, wang's downgraded), the same Chinese text." \
		"$rc|$(echo "$out" | tail -n 1)"
	check "demo-zh: nine numbered steps" "1 2 3 4 5 6 7 8 9" \
		"$(echo "$out" | sed -n 's/^Step \([0-9]\)\..*/\1/p' | tr '\n' ' ' | sed 's/ $//')"
	step() { echo "$out" | sed -n "/^Step $1\\./,/^Step $(($1 + 1))\\./p"; }
	check "demo-zh: 例子.测试 is looked up by its A-labels (-M, and the query in -v)" \
		"    |   例子.测试 is xn--fsqu00a.xn--0zwm56d in DNS (A-labels: the Punycode of each label, RFC 3492)
    | dns: xn--fsqu00a.xn--0zwm56d MX? -> ok (1 records)" \
		"$(step 2 | grep 'is xn--'; step 3 | grep 'dns: xn--fsqu00a.xn--0zwm56d MX?' | sed 's/ from .*//')"
	check "demo-zh: SMTPUTF8 in the EHLO reply and in MAIL FROM" \
		"    | S: 250-SMTPUTF8
    | C: MAIL FROM:<张三@例子.测试> SIZE=<n> BODY=8BITMIME SMTPUTF8" \
		"$(step 3 | grep -E '^    \| (S: 250-SMTPUTF8|C: MAIL)' | sed 's/SIZE=[0-9]*/SIZE=<n>/')"
	check "demo-zh: 李四's Maildir has a UTF-8 name, the message came with UTF8SMTP" \
		"    | 李四|1" "$(step 4 | grep -x '    | 李四')|$(step 4 | grep -c 'by mx.xn--fsqu00a.xn--0zwm56d with UTF8SMTP')"
	check "demo-zh: the old server: no address downgrade (553 5.6.7 for 张三@例子.测试)" \
		"    | <wang@legacy.example.com> failed relay=mx.legacy.example.com[127.0.0.7]:<port> reply=\"553 5.6.7 non-ASCII sender, server does not offer SMTPUTF8\"" \
		"$(step 5 | grep failed | sed 's/:[0-9]* reply/:<port> reply/')"
	check "demo-zh: for the old server -v names the header downgrade and the quoted-printable body" \
		"    | header downgraded to RFC 2047 for mx.legacy.example.com[127.0.0.7]:<port>
    | body converted to quoted-printable for mx.legacy.example.com[127.0.0.7]:<port>" \
		"$(step 6 | grep -E 'downgraded|converted' | sed 's/:[0-9]*$/:<port>/')"
	check "demo-zh: wang's stored copy: Subject as encoded-words, the body quoted-printable" \
		"    | From: =?UTF-8?B?5byg5LiJ?= <zhangsan@xn--fsqu00a.xn--0zwm56d>
    | To: =?UTF-8?B?6ICB546L?= <wang@legacy.example.com>
    | Subject: =?UTF-8?B?5L2g5aW977yB6L+Z5piv5LiA5bCB5Lit5paH6YKu5Lu2?=
    | Content-Transfer-Encoding: quoted-printable
    | =E8=80=81=E7=8E=8B=EF=BC=8C=E4=BD=A0=E5=A5=BD=EF=BC=9A" \
		"$(step 7 | grep -E '^    \| (From|To|Subject|Content-Transfer-Encoding):|^    \| =E8=80')"
	if [ -x /usr/bin/python3 ]; then
		check "demo-zh: read back by Python's email package, both say the same" \
			"    | Subject: 你好！这是一封中文邮件
    | Subject: 你好！这是一封中文邮件
    | From: 张三 <zhangsan@xn--fsqu00a.xn--0zwm56d>" \
			"$(step 8 | grep '^    | Subject:'; step 8 | grep '^    | From: 张三 <zhangsan')"
	else
		skip "demo-zh read back by Python: /usr/bin/python3 is not installed"
	fi
	check "demo-zh: every process it started is stopped, and it says so" "0|3" \
		"$(procs_in "$T/demozh")|$(step 9 | grep -c '| lab: stopped ')"
}

t_lab() {
	local out port zpid zparent
	out=$(LAB_DIR=$T/lab LAB_PORT=0 LAB_DNS_PORT=0 ./lab/lab.sh up 2>&1)
	check "lab up: DNS and five mail hosts up" "6" "$(echo "$out" | grep -c ' up$')"
	port=$(cat "$T/lab/port")
	out=$(printf 'HELO c\nMAIL FROM:<x@example.net>\nRCPT TO:<alice@example.org>\nDATA\nhi\n.\nQUIT\n' |
		SMTP_HOST=127.0.0.2 smtp "$port" | codes | tr '\n' ' ')
	check "lab: mail.example.org takes mail for alice" "220 250 250 250 354 250 221 |1" \
		"$out|$(count_files "$T/lab/mail/mail/alice/new")"
	out=$(LAB_DIR=$T/lab ./lab/lab.sh stop mx1)
	check "lab stop mx1: only that host stops, and it says so" "5|lab: stopped mx1.example.net" \
		"$(LAB_DIR=$T/lab ./lab/lab.sh status | grep -c ' up$')|$(echo "$out" | head -n 1 | sed 's/ (pid [0-9]*)//')"

	# make demo while make lab-up runs: one line, nothing started, nothing deleted
	out=$(LAB_UP_DIR=$T/lab ./lab/lab.sh demo 2>&1)
	check "make demo while the lab runs: one line, exit 1" "1|the lab is running: make lab-down first" "$?|$out"

	# a zombie answers kill -0; lab down must tell it from a live daemon
	# (the child outlives the shell's exec by 0.2 s, so no shell can reap it)
	(sleep 0.2 & echo $! >"$T/lab/zombie"; exec sleep 30) &
	zparent=$!
	PIDS+=("$zparent")
	poll 100 test -s "$T/lab/zombie"
	zpid=$(cat "$T/lab/zombie")
	poll 100 eval '[ "$(ps -o stat= -p "$zpid" | cut -c1)" = Z ]'
	mkdir -p "$T/lab/mx1" && echo "$zpid" >"$T/lab/mx1/pid"
	out=$(LAB_DIR=$T/lab ./lab/lab.sh down | sed 's/(pid [0-9]*)/(pid N)/')
	check "lab down: says what it stopped, tells a zombie from a live daemon" \
		"lab: stopped DNS server (pid N)
lab: stopped mx.legacy.example.com (pid N)
lab: stopped mail.example.org (pid N)
lab: mx1.example.net (pid N) had already exited: a zombie, waiting for its parent to reap it
lab: stopped mx2.example.net (pid N)
lab: stopped mx.xn--fsqu00a.xn--0zwm56d (pid N)" "$out"
	stop_pid "$zparent"
	check "lab down: nothing left running" "0" "$(procs_in "$T/lab")"
	check "lab down again: says there is nothing to stop" "lab: nothing was running in $T/lab" \
		"$(LAB_DIR=$T/lab ./lab/lab.sh down)"
}

t_notes() {
	local want have term
	want=$(./lab/transcript.sh)
	have=$(sed -n '/<!-- transcript:begin -->/,/<!-- transcript:end -->/p' NOTES.md | sed -e '1,2d' -e '$d' | sed '$d')
	check "NOTES.md holds the transcript the programs print today (lab/transcript.sh)" "$want" "$have"
	# the demo's ladder, as t_demo left it (run it first when only this group runs)
	[ -d "$T/demo/client" ] || LAB_DIR=$T/demo LAB_PORT=0 LAB_DNS_PORT=0 ./lab/lab.sh demo >/dev/null 2>&1
	want=$(./lab/ladder.sh -n "$T/demo")
	[ -n "$want" ] || want="(lab/ladder.sh drew nothing)"
	have=$(sed -n '/<!-- ladder:begin -->/,/<!-- ladder:end -->/p' NOTES.md | sed -e '1,2d' -e '$d' | sed '$d')
	check "NOTES.md Part 3 holds the ladder the demo draws today (lab/ladder.sh --demo --update)" "$want" "$have"

	# the guide a Chinese-speaking class can follow (issue 11, point 4)
	check "NOTES: Parts 1 and 6 and their sections have bilingual headings" "" \
		"$(awk '/^## Part 1:/ { on = 1 } /^## Part 2:/ { on = 0 } /^## Part 6:/ { on = 1 } /^## Part 7:/ { on = 0 }
			on && /^##/ && !/ \/ .*[^ -~]/ { print }' NOTES.md)"
	check "NOTES: each of the ten points has its 中文要点" "10" \
		"$(sed -n '/^## Part 1:/,/^## Part 2:/p' NOTES.md | grep -c '^中文要点：')"
	check "NOTES: the three differences from the handout, in both languages" "3|3" \
		"$(sed -n '/^### Where this project differs from the course handout/,/^## Part 2:/p' NOTES.md | grep -c '^[123]\. \*\*')|$(sed -n '/^### Where this project differs/,/^## Part 2:/p' NOTES.md | grep -c '^   讲义')"
	check "NOTES: the glossary has the terms issue 11 asks for" "" \
		"$(for term in 规范名称记录 邮件别名 信封发件人 信头发件人 信封收件人 信头收件人 智能主机 回车换行 '会话 / 事务' 扩展 中继主机 守护进程 后台程序 返回路径 邮件列表; do
			sed -n '/^## Part 5:/,/^## Part 6:/p' NOTES.md | grep -q "^| .*| .*$term" || echo "missing: $term"; done)"

	# issue 10: the part on Chinese mail, its worked examples true
	check "NOTES: the glossary has the terms issue 10 asks for" "" \
		"$(for term in 字符集 编码 多用途互联网邮件扩展 国际化域名 国际化邮箱地址 '降级'; do
			sed -n '/^## Part 5:/,/^## Part 6:/p' NOTES.md | grep -q "^| .*| .*$term" || echo "missing: $term"; done)"
	check "NOTES Part 9: its topics, each with a 中文要点" "6|6" \
		"$(sed -n '/^# Part 9:/,$p' NOTES.md | grep -c -E '^### (Bytes and characters|MIME: charset|RFC 2047 encoded-words|SMTPUTF8 and UTF-8 headers|IDN and Punycode|What each downgrade loses)')|$(sed -n '/^# Part 9:/,$p' NOTES.md | grep -c '^中文要点：')"
	if [ -x /usr/bin/python3 ]; then
		want=$(/usr/bin/python3 -c 'import base64, quopri, sys
t = "你好".encode()
print(quopri.encodestring(t).decode().strip(), base64.b64encode(t).decode(), "例子".encode("punycode").decode(),
      "你".encode().hex(" ").upper())')
		have=$(sed -n '/^# Part 9:/,$p' NOTES.md | sed -n -e 's/^ *你好  ->  \(=[=0-9A-F]*\)$/\1/p' \
			-e 's/^ *你好 is `\([^`]*\)`.*/\1/p' -e 's/^ *result: \([a-z0-9]*\), so 例子 is xn--.*/\1/p' \
			-e 's/^ *1110 0100   10 111101   10 100000      = \(E4 BD A0\)$/\1/p' | tr '\n' ' ' | sed 's/ $//')
		check "NOTES Part 9: 你好 in quoted-printable and base64, 例子 in Punycode, 你 in UTF-8, as Python computes them" \
			"$(echo "$want" | awk '{ print $4 " " $5 " " $6, $1, $2, $3 }')" "$have"
	else
		skip "NOTES Part 9's worked examples against Python: /usr/bin/python3 is not installed"
	fi
}

t_by_hand() {
	# tests/chat -i, the fallback README and NOTES give for a machine
	# without nc or telnet: what is typed goes out with CR LF (smtpd -v
	# sees no bare LF), the replies come back, the message is stored
	start_smtpd byhand -m mail -v
	local d=$T/byhand out
	mkdir -p "$d/mail/alice"
	out=$(printf 'EHLO me\nMAIL FROM:<a@b.test>\nRCPT TO:<alice@localhost>\nDATA\nSubject: by hand\n\nhello\n.\nQUIT\n' |
		"$CHAT" -i 127.0.0.1 "$PORT" | norm | grep -v '^250-')
	check "chat -i: typed lines go out with CR LF, the session as with nc -C" "220 mx.test ESMTP
250 HELP
250 2.1.0 Sender <a@b.test> OK
250 2.1.5 Recipient <alice@localhost> OK
354 End data with <CR><LF>.<CR><LF>
250 2.0.0 Ok: stored as ID
221 2.0.0 mx.test closing connection|0|1" "$out|$(grep -c 'bare LF' "$d/log")|$(count_files "$d/mail/alice/new")"
	stop_pid "$SPID"
}

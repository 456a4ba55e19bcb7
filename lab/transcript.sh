#!/usr/bin/env bash
# lab/transcript.sh - a real SMTP session, captured and annotated.
#
#   lab/transcript.sh            print it
#   lab/transcript.sh --update   also write it into NOTES.md (between the
#                                transcript:begin/end markers)
#
# Starts smtpd -v on a free loopback port, plays one session with
# tests/chat (one command, one reply), and prints the server's C:/S: log
# with ids and dates replaced, each line followed by what it means.
# test.sh checks that NOTES.md holds exactly this output.
set -u
LAB=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$LAB")
dir=$(mktemp -d "${TMPDIR:-/tmp}/smtp-transcript.XXXXXX") || exit 1
mkdir -p "$dir/mail/bob"
(cd "$dir" && exec "$TOP/smtpd" -v -p 0 -n mx.example.net -d example.net -m mail) 2>"$dir/log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for ((i = 0; i < 200; i++)); do grep -qs listening "$dir/log" && break; sleep 0.05; done
port=$(sed -n 's/.*listening.* port=\([0-9]*\).*/\1/p' "$dir/log")
sed 's/$/\r/' <<'SESSION' | "$TOP/tests/chat" -l 127.0.0.1 "$port" >/dev/null
EHLO client.example.org
MAIL FROM:<alice@example.org>
RCPT TO:<bob@example.net>
RCPT TO:<nobody@example.net>
DATA
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: annotated

Hello Bob.
..a line that starts with a dot
.
VRFY bob
QUIT
SESSION
for ((i = 0; i < 200; i++)); do grep -q disconnect "$dir/log" && break; sleep 0.05; done

out=$(grep -E ' (C|S): ' "$dir/log" | sed -E -e 's/^smtpd: sid=[^ ]+ //' \
	-e 's/(stored and queued|stored|queued) as [0-9A-Za-z.]+/\1 as <id>/' | awk '
	/^S: 220 /                 { t = "greeting: the server speaks first (RFC 5321 3.1)" }
	/^C: EHLO/                 { t = "the client names itself, asks for extensions (RFC 5321 4.1.1.1)" }
	/^S: 250-.*Hello/          { t = "\"250-\": more lines of this reply follow (RFC 5321 4.2.1)" }
	/^S: 250-PIPELINING/       { t = "commands may be sent in groups (RFC 2920)" }
	/^S: 250-SIZE/             { t = "the largest message it takes (RFC 1870)" }
	/^S: 250-8BITMIME/         { t = "8-bit bodies are fine (RFC 6152)" }
	/^S: 250-SMTPUTF8/         { t = "UTF-8 addresses (RFC 6531) and header fields (RFC 6532)" }
	/^S: 250-ENHANCED/         { t = "replies carry x.y.z codes (RFC 2034; the codes: RFC 3463)" }
	/^S: 250 HELP/             { t = "\"250 \": the last line of the reply" }
	/^C: MAIL/                 { t = "envelope sender: bounces go here (RFC 5321 4.1.1.2)" }
	/^S: 250 2\.1\.0/          { t = "2xx: done (RFC 5321 4.2.1); 2.1.0: other address status (RFC 3463 3.2)" }
	/^C: RCPT TO:<bob/         { t = "an envelope recipient (RFC 5321 4.1.1.3)" }
	/^S: 250 2\.1\.5/          { t = "accepted; 2.1.5: destination address valid" }
	/^C: RCPT TO:<nobody/      { t = "another one: each gets its own answer" }
	/^S: 550 5\.1\.1/          { t = "5xx: refused for good; 5.1.1: bad destination mailbox address" }
	/^C: DATA/                 { t = "the message follows (RFC 5321 4.1.1.4)" }
	/^S: 354/                  { t = "3xx: go on; end with a line \".\" alone" }
	/^C: From:/                { t = "the message: its header first (RFC 5322 2.1)" }
	/^C: $/                    { t = "an empty line: the header ends" }
	/^C: \.\.a line/           { t = "a leading dot, doubled by the client (RFC 5321 4.5.2)" }
	/^C: \.$/                  { t = "end of data: CRLF . CRLF (RFC 5321 4.1.1.4)" }
	/^S: 250 2\.0\.0 Ok: stored/ { t = "stored in bob'"'"'s Maildir, the file <id>.<host>" }
	/^C: VRFY/                 { t = "does this mailbox exist? (RFC 5321 4.1.1.6)" }
	/^S: 252/                  { t = "VRFY is off, as on most servers: 252 (RFC 5321 7.3)" }
	/^C: QUIT/                 { t = "goodbye (RFC 5321 4.1.1.10)" }
	/^S: 221/                  { t = "the server closes the connection" }
	{ if (t != "") printf "%-44s  # %s\n", $0, t; else print; t = "" }')
printf '%s\n' "$out"

if [ "${1:-}" = --update ]; then
	notes=$TOP/NOTES.md
	awk -v block="$out" '
		/<!-- transcript:begin -->/ { print; print "```"; print block; print "```"; skip = 1; next }
		/<!-- transcript:end -->/   { skip = 0 }
		!skip { print }' "$notes" >"$notes.new" && mv "$notes.new" "$notes"
fi

#!/usr/bin/env bash
# lab/exercise.sh - run one exercise of NOTES.md Part 6 and check it.
#
#   lab/exercise.sh N        run exercise N; print "exercise N: ok", or
#                            each claim that did not hold (exit 1)
#   lab/exercise.sh -l       list the exercises NOTES.md has
#
# The commands are read from NOTES.md itself, from the fenced block
# "```sh exercise-N" (and "```sh lab-setup" before every exercise that
# does not start with a make demo, which brings its own lab), so they
# cannot drift from the text.  They run in order in one
# bash, in the top directory, on a private lab: its own LAB_DIR and free
# ports (LAB_PORT=0, LAB_DNS_PORT=0).  What NOTES writes for the lab you
# start yourself is translated, and nothing else:
#   make lab-up / lab-down / demo   lab/lab.sh up / down / demo
#   lab/run                         the private lab directory
#   2525, 10053                     the private lab's SMTP and DNS ports
#   nc -C HOST PORT + typed lines   tests/chat -l HOST PORT, the lines sent
#                                   with CR LF, each after the previous
#                                   reply (as a person types)
#   ... | nc HOST PORT              ... | tests/chat HOST PORT (one write)
# Lines under a "$ command" in a block are its standard input.
#
# The claims are read from the exercise's *Correct:* list: each bullet's
# `backticked` strings are what check_N below looks for, in the output of
# the command it names (or in a file).  So an expected reply lives in one
# place, NOTES.md; check_N only says where to look and how (in order,
# present, absent, whole line).  In a claim, <id> stands for a message id,
# ... for any text, and 2525 for the lab's SMTP port.
set -u
LAB=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$LAB")
NOTES=${NOTES:-$TOP/NOTES.md}

usage() { sed -n '2,8p' "$0" >&2; exit 2; }
[ $# -eq 1 ] || usage
if [ "$1" = -l ]; then
	sed -n 's/^```sh exercise-\([0-9]*\)$/\1/p' "$NOTES"
	exit 0
fi
case $1 in *[!0-9]* | '') usage ;; esac
N=$1

# ---- reading NOTES.md ----------------------------------------------------------

# The fenced block "```sh NAME", without its fences.
block() { awk -v name="$1" '$0 == "```sh " name { on = 1; next } on && /^```/ { exit } on { print }' "$NOTES"; }

# The bullets of exercise N's *Correct:* list, one per line (continuation
# lines joined).
bullets() {
	awk -v n="$N" '
		/^### / { inex = ($0 ~ "^### Exercise " n "\\.") ; on = 0 }
		inex && /^\*Correct:\*/ { on = 1; next }
		on && /^- / { if (b != "") print b; b = substr($0, 3); next }
		on && /^  [^ ]/ && b != "" { sub(/^  /, " "); b = b $0; next }
		on && /^$/ && b != "" { print b; b = ""; on = 0 }
		END { if (b != "") print b }' "$NOTES"
}

# Bash-ready script from a block: commands translated, typed lines as a
# here-document on the command's standard input.
translate() {
	awk -v top="$TOP" -v run="$LAB_DIR" -v pre="${1:-}" '
		function flush() {
			if (cmd == "") return
			k++
			if (typed != "") {
				printf "{ %s ; } >\"$W/out/%s%d\" 2>&1 <<'"'"'TYPED'"'"'\n%sTYPED\n", cmd, pre, k, typed
			} else
				printf "{ %s ; } >\"$W/out/%s%d\" 2>&1 </dev/null\n", cmd, pre, k
			printf "echo $? >\"$W/rc/%s%d\"\n", pre, k
			if (setup) printf "LABP=$(cat \"%s/port\" 2>/dev/null); LABD=$(cat \"%s/dns/port\" 2>/dev/null)\n", run, run
			cmd = typed = ""; setup = 0
		}
		/^\$ / {
			flush()
			c = substr($0, 3)
			if (c ~ /^make lab-up/) setup = 1
			gsub(/make lab-up/, "\"" top "/lab/lab.sh\" up", c)
			gsub(/make lab-down/, "\"" top "/lab/lab.sh\" down", c)
			gsub(/make demo/, "\"" top "/lab/lab.sh\" demo", c)
			gsub(/lab\/run/, run, c)
			gsub(/127\.0\.0\.1:10053/, "127.0.0.1:$LABD", c)
			if (c ~ /^nc -C [0-9.]+ 2525$/) {
				split(c, w, " ")
				c = "sed \"s/\\$/\\r/\" | \"" top "/tests/chat\" -l " w[3] " 2525"
			}
			if (match(c, /\| nc [0-9.]+ 2525$/)) {
				split(substr(c, RSTART), w, " ")
				c = substr(c, 1, RSTART - 1) "| \"" top "/tests/chat\" " w[3] " 2525"
			}
			gsub(/2525/, "$LABP", c)
			cmd = c
			next
		}
		{ typed = typed $0 "\n" }
		END { flush() }'
}

# ---- claims ------------------------------------------------------------------

W=$(mktemp -d "${TMPDIR:-/tmp}/smtp-exercise.XXXXXX") || exit 1
export LAB_DIR=$W/run LAB_PORT=0 LAB_DNS_PORT=0
cleanup() { "$LAB/lab.sh" down >/dev/null 2>&1; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/out" "$W/rc" "$W/claims"
failures=0
differ() { echo "exercise $N: $*"; failures=$((failures + 1)); }

# The backticked strings of bullet K as extended regexes, one per line:
# <id> is a message id, ... any text, 2525 the lab's port.
patterns() {
	sed -n "${1}p" "$W/bullets" | grep -o '`[^`]*`' | sed -e 's/^`//' -e 's/`$//' |
		sed -e "s/2525/$(cat "$LAB_DIR/port" 2>/dev/null || echo 2525)/g" -e 's/[]\/$*.^|[(){}?+]/\\&/g' \
		    -e 's/<id>/[0-9A-Za-z.]+/g' -e 's/\\\.\\\.\\\./.*/g'
}
# The literal text of item I of bullet K (for messages).
item() { sed -n "${1}p" "$W/bullets" | grep -o '`[^`]*`' | sed -n "${2}p"; }
out() { tr -d '\r' <"$W/out/$1"; }

# claim K HOW TEXT [ITEMS]: bullet K's strings (ITEMS: "2-" from the
# second, "1" only the first) must be in TEXT:
#   in_order  each in a line, in this order   present  each somewhere
#   absent    none anywhere                   lines    each a whole line, in order
#   starts    the first lines, exactly, in this order
claim() {
	local k=$1 how=$2 text=$3 items=${4:-1-} i=0 re from=0 n
	[ "$k" -le "$(wc -l <"$W/bullets")" ] || { differ "NOTES has no bullet $k in *Correct:*"; return; }
	printf '%s\n' "$text" >"$W/text"
	while IFS= read -r re; do
		i=$((i + 1))
		case $items in *-) [ "$i" -ge "${items%-}" ] || continue ;; *) [ "$i" -eq "$items" ] || continue ;; esac
		case $how in
		in_order | lines)
			[ "$how" = lines ] && re="^$re\$"
			n=$(awk -v from="$from" -v re="$re" 'NR > from && $0 ~ re { print NR; exit }' "$W/text")
			if [ -z "$n" ]; then differ "bullet $k: $(item "$k" "$i") not found (in order)"; return; fi
			from=$n ;;
		present) grep -Eq -- "$re" "$W/text" || differ "bullet $k: $(item "$k" "$i") not found" ;;
		absent) ! grep -Eq -- "$re" "$W/text" || differ "bullet $k: $(item "$k" "$i") should not be there" ;;
		starts)
			from=$((from + 1))
			sed -n "${from}p" "$W/text" | grep -Eq -- "^$re\$" ||
				differ "bullet $k: line $from is not $(item "$k" "$i")" ;;
		esac
	done < <(patterns "$k")
}
# How many bullets the check expects: a new or lost claim must be seen.
expect_bullets() {
	local n
	n=$(wc -l <"$W/bullets")
	[ "$n" -eq "$1" ] || differ "NOTES has $n claims in *Correct:*, the check knows $1"
}
# The part of TEXT from the line matching FROM up to the one before TO.
section() { awk -v a="$2" -v b="$3" '$0 ~ a { on = 1 } on && b != "" && $0 ~ b { exit } on { print }' <<<"$1"; }
newest() { ls "$1" | tail -n 1; }

# ---- the checks, one per exercise ---------------------------------------------

check_1() {
	expect_bullets 4
	claim 1 lines "$(out 1 | tail -n 1)"
	claim 2 in_order "$(section "$(out 1)" '^Step 6' '^Step 7')"
	claim 3 in_order "$(section "$(out 1)" '^Step 5' '^Step 6')"
	claim 4 present "$(section "$(out 1)" '^Step 7' '^Step 8')"
	[ "$(section "$(out 1)" '^Step 7' '^Step 8' | grep -c 'X|')" = 1 ] || differ "bullet 4: no X on mx1's line"
}
check_2() {
	expect_bullets 3
	claim 1 in_order "$(out 1)"
	claim 2 lines "$(out 2)"
	claim 3 in_order "$(out 3)"
}
check_3() {
	expect_bullets 4
	claim 1 in_order "$(out 3)"
	claim 2 lines "$(out 4)"
	claim 3 in_order "$(out 7)"
	claim 4 absent "$(out 7)"
}
check_4() {
	expect_bullets 2
	claim 1 starts "$(out 2)"
	claim 2 present "$(out 2)"
}
check_5() {
	expect_bullets 4
	claim 1 in_order "$(out 1)"
	[ "$(out 1 | grep -c 'C: RCPT TO:')" = 2 ] || differ "bullet 1: not one RCPT per session"
	claim 2 absent "$(out 1)"
	claim 3 present "$(out 3)" 1
	claim 3 absent "$(out 3)" 2-
	claim 4 present "$(out 4)" 1
	[ "$(out 4 | grep -c 'for <bob@cs.example.net>')" = 2 ] || differ "bullet 4: not in both Received: lines"
	claim 4 absent "$(out 4)" 2-
}
check_6() {
	local i
	expect_bullets 5
	for i in 1 2 3 4 5; do claim "$i" in_order "$(out "$i")"; done
}
check_7() {
	expect_bullets 3
	claim 1 in_order "$(out 2)"
	claim 2 in_order "$(out 3)"
	claim 3 starts "$(out 3)"          # the null sender, the Return-Path: <> above
}
check_8() {
	expect_bullets 3
	claim 1 lines "$(out 2)"
	claim 2 in_order "$(out 4)"
	[ "$(out 4 | grep -c '^250 2.1.0')" = 1 ] || differ "bullet 3: the hidden MAIL got a reply"
	[ "$(out 3)" = "$(out 5)" ] || differ "bullet 3: something was stored ($(out 3) files before, $(out 5) after)"
}
check_9() {
	local limit
	expect_bullets 3
	claim 1 in_order "$(out 6)"
	claim 2 present "$(out 7)"
	limit=$(item 3 1 | tr -d '`')
	[ "$(out 8)" -gt "$limit" ] 2>/dev/null || differ "bullet 3: $(out 8) Received: lines, not above $limit"
}
check_10() {
	expect_bullets 2
	claim 1 in_order "$(out 1)"
	claim 2 in_order "$(out 3)"
}
check_11() {
	expect_bullets 2
	claim 1 in_order "$(out 3)"
	claim 2 in_order "$(out 5)"
}
check_12() {
	expect_bullets 2
	claim 1 in_order "$(out 1)"
	claim 2 present "$(out 2)"
}
check_13() {
	expect_bullets 3
	claim 1 present "$(out 5)"
	claim 2 in_order "$(out 6)"
	claim 3 present "$(out 7)"
	! grep -q 'could not read' "$W/out/5" || differ "mscan complains: $(head -n 1 "$W/out/5")"
	[ -z "$(ls "$LAB_DIR/mail/mail/alice/cur")" ] || differ "reading moved messages to cur/"
}
check_14() {
	expect_bullets 2
	claim 1 absent "$(out 2 | grep '^250')" 1
	claim 1 present "$(out 2)" 2-
	claim 2 in_order "$(out 2)"
}
check_15() {             # out 2: make demo-zh, between lab-down and lab-up
	expect_bullets 4
	claim 1 lines "$(out 2 | tail -n 1)"
	claim 2 in_order "$(section "$(out 2)" '^Step 2' '^Step 4')"
	claim 3 present "$(section "$(out 2)" '^Step 4' '^Step 5')"
	claim 4 in_order "$(section "$(out 2)" '^Step 7' '^Step 8')"
}
check_16() {
	expect_bullets 3
	claim 1 in_order "$(out 1)"
	claim 2 present "$(out 2)"
	claim 3 in_order "$(out 3)"
}
check_17() {
	expect_bullets 4
	claim 1 in_order "$(out 2)"
	claim 2 in_order "$(out 2)"
	claim 3 absent "$(out 2)"
	claim 4 in_order "$(out 3)"
}
check_18() {
	expect_bullets 2
	claim 1 in_order "$(out 1)"
	claim 2 lines "$(out 2)"
}

# ---- run -------------------------------------------------------------------------

[ -n "$(block "exercise-$N")" ] || { echo "exercise $N: NOTES.md has no such exercise" >&2; exit 2; }
declare -F "check_$N" >/dev/null || { echo "exercise $N: lab/exercise.sh has no check for it" >&2; exit 2; }
case $N in 13) tools="mlist mscan mshow /usr/bin/python3" ;; 15 | 18) tools=/usr/bin/python3 ;; *) tools= ;; esac
for tool in $tools; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "exercise $N: skipped: $tool is not installed (Debian: mblaze, python3)"; exit 77; }
done
for t in smtpd smtp_send tests/dnsd tests/chat tests/fakesmtp; do
	[ -x "$TOP/$t" ] || { echo "exercise $N: run make first" >&2; exit 2; }
done
bullets >"$W/bullets"
{
	echo "W='$W'"
	block "exercise-$N" | head -n 1 | grep -q '^\$ make demo' || block lab-setup | translate s
	block "exercise-$N" | translate
} >"$W/script"
# the setup commands write to out/s1, out/s2...; the exercise's to out/1, out/2...
(cd "$TOP" && timeout 300 bash "$W/script") >"$W/script.log" 2>&1
"check_$N"
if [ "$failures" -eq 0 ]; then
	echo "exercise $N: ok"
	exit 0
fi
echo "exercise $N: $failures claim(s) did not hold; the commands and what they printed:"
i=1
while [ -e "$W/out/s$i" ]; do
	echo "--- setup command $i (exit $(cat "$W/rc/s$i"))"
	head -n 20 "$W/out/s$i"
	i=$((i + 1))
done
i=1
while [ -e "$W/out/$i" ]; do
	echo "--- command $i (exit $(cat "$W/rc/$i"))"
	head -n 60 "$W/out/$i"
	i=$((i + 1))
done
exit 1

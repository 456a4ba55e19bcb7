#!/usr/bin/env bash
# tests/mutants.sh - mutation testing: does the suite notice a bug?
#
#   tests/mutants.sh [NUMBER...]          (make mutate)
#
# Puts the mutants of tests/mutants.list into smtpd.c or smtp_send.c one
# at a time, each in its own scratch copy of the tree (the working files
# are never touched), rebuilds it, and runs the test groups that should
# notice (test.sh =GROUP, stopping at the first failed check).  A mutant
# is killed when a group fails, survives when all pass.  First the same
# groups run on the unchanged copy: they must pass there, or a kill would
# mean nothing.  NUMBERs run only those mutants of the list.
#
# Prints one line per mutant: number, file:line, the change, the verdict;
# then "mutants: K killed, S survived, E equivalent".  Verdicts:
#   killed by GROUP    a check of GROUP failed (or timed out)
#   SURVIVED           every group passed: the suite misses this bug
#   equivalent         marked so in the list, with the reason; not run
#   NO-MATCH           the original text is not in the file exactly once
#   BUILD-FAILED       the mutated file does not compile
# Exit status 0 only when nothing survived and nothing is broken.
#
# Environment: MUTANT_JOBS mutants at a time [2]; MUTANT_TIMEOUT seconds
# for one group on one mutant [120]; MUTANT_LIST another list to try
# [tests/mutants.list].  Scratch space under $TMPDIR, ports
# from the tests' own -p 0: it runs beside other test runs.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
JOBS=${MUTANT_JOBS:-2}
GROUP_TIMEOUT=${MUTANT_TIMEOUT:-120}
SAN_CC=$(command -v clang >/dev/null && echo clang || echo cc)
SAN_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/mutants.XXXXXX") || exit 1

stop_runs() {       # the mutants being run, then their test runs' process groups
	local p f
	for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null; done
	for f in "$work"/pgid.*; do
		[ -f "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null
	done
	wait
}
trap 'rm -rf "$work"' EXIT
trap 'stop_runs; exit 1' INT TERM

# ---- the list ---------------------------------------------------------------------------

M_FILE=() M_GROUPS=() M_FROM=() M_TO=() M_NOTE=()
m() {
	M_FILE+=("$1") M_GROUPS+=("$2") M_FROM+=("$3") M_TO+=("$4") M_NOTE+=("${5:-}")
}
LIST=${MUTANT_LIST:-$TOP/tests/mutants.list}
# shellcheck source=tests/mutants.list
. "$LIST" || exit 1
n=${#M_FILE[@]}
if [ $# -gt 0 ]; then todo=("$@"); else mapfile -t todo < <(seq 1 "$n"); fi

# A fragment shown on one line: newlines as "\n", no tabs.
show() { local s=${1//$'\t'/}; s=${s//$'\n'/\\n}; printf '%s' "${s:-(nothing)}"; }

# make_mutant I: write the mutated file to $work/src.I and its line to
# $work/line.I; when the original is not there exactly once, say so in
# $work/result.I.
make_mutant() {
	local i=$1 file=${M_FILE[$1 - 1]} from=${M_FROM[$1 - 1]} to=${M_TO[$1 - 1]}
	local text prefix rest
	text=$(cat "$TOP/$file"; printf x)
	text=${text%x}
	prefix=${text%%"$from"*}
	if [ -z "$from" ] || [ "$prefix" = "$text" ]; then
		echo "NO-MATCH (the original text is not in $file)" >"$work/result.$i"
		return
	fi
	rest=${text:${#prefix}+${#from}}
	if [[ $rest == *"$from"* ]]; then
		echo "NO-MATCH (the original text is in $file more than once)" >"$work/result.$i"
		return
	fi
	printf '%s%s%s' "$prefix" "$to" "$rest" >"$work/src.$i"
	printf '%s' "$prefix" | wc -l | awk '{ print $1 + 1 }' >"$work/line.$i"
}

# ---- scratch copies ---------------------------------------------------------------------

# copy_tree DIR: the files the suite needs, timestamps kept.
copy_tree() {
	mkdir -p "$1/tests" &&
	cp -p "$TOP/Makefile" "$TOP/test.sh" "$TOP/smtpd.c" "$TOP/smtp_send.c" "$1/" &&
	cp -p "$TOP"/tests/*.c "$TOP"/tests/*.h "$1/tests/" &&
	cp -pR "$TOP/tests/groups" "$1/tests/"
}

# build DIR PROGRAM [sanitize]
build() {
	if [ -n "${3:-}" ]; then
		make -s -C "$1" CC="$SAN_CC" CFLAGS="$SAN_CFLAGS" "$2"
	else
		make -s -C "$1" "$2"
	fi
}

# run_groups DIR ID SANITIZE GROUP...: each group in turn until one fails.
# Prints "pass" or the failing group and its first FAIL line.
run_groups() {
	local dir=$1 id=$2 san=$3 g rc pg; shift 3
	for g in "$@"; do
		SANITIZED=$san TEST_FAIL_FAST=1 timeout -k 5 "$GROUP_TIMEOUT" "$dir/test.sh" "=$g" \
			>"$dir/test.$g.log" 2>&1 </dev/null &
		pg=$!
		echo "$pg" >"$work/pgid.$id"
		wait "$pg"; rc=$?
		rm -f "$work/pgid.$id"
		if [ $rc -ne 0 ]; then
			if [ $rc -ge 124 ]; then echo "$g (timeout)"
			else echo "$g ($(grep -m 1 '^FAIL - ' "$dir/test.$g.log" | cut -c8-70))"; fi
			return 1
		fi
		if ! grep -Eq '^[1-9][0-9]* passed, 0 failed' "$dir/test.$g.log"; then
			echo "$g (ran no test: $(tail -n 1 "$dir/test.$g.log"))"
			return 2
		fi
	done
	echo pass
}

# run_mutant I: prints its verdict into $work/result.I
run_mutant() {
	local i=$1 dir=$work/m$1 file=${M_FILE[$1 - 1]} san="" out rc groups
	[ "${M_NOTE[i - 1]}" = sanitize ] && san=1
	cp -pR "$work/base${san:+-san}" "$dir"
	cp "$work/src.$i" "$dir/$file"
	if ! build "$dir" "${file%.c}" "$san" >"$dir/build.log" 2>&1; then
		echo "BUILD-FAILED" >"$work/result.$i"
	else
		read -ra groups <<<"${M_GROUPS[i - 1]}"
		out=$(run_groups "$dir" "$i" "$san" "${groups[@]}"); rc=$?
		case $rc in
		0) echo "SURVIVED" ;;
		1) echo "killed by $out" ;;
		*) echo "BROKEN: $out" ;;
		esac >"$work/result.$i"
	fi
	rm -rf "$dir"
}

# ---- run --------------------------------------------------------------------------------------

echo "mutants: $n in ${LIST#"$TOP"/}, $JOBS at a time, scratch copies in $work"
if ! { copy_tree "$work/base" && make -s -C "$work/base" all >"$work/base.log" 2>&1; }; then
	cat "$work/base.log"
	echo "mutants: the unchanged tree does not build"
	exit 1
fi

# Check every fragment first: a stale list fails loudly, before any test.
for i in "${todo[@]}"; do
	if [ "$i" -ge 1 ] 2>/dev/null && [ "$i" -le "$n" ]; then
		make_mutant "$i"
	else
		echo "mutants: no mutant number $i in the list"; exit 1
	fi
done

# The baseline: every group the list names, on the unchanged code.
groups=() san_groups=()
for i in "${todo[@]}"; do
	[ -f "$work/result.$i" ] && continue
	case ${M_NOTE[i - 1]} in
	equivalent:*) continue ;;
	sanitize) read -ra more <<<"${M_GROUPS[i - 1]}"; san_groups+=("${more[@]}") ;;
	*) read -ra more <<<"${M_GROUPS[i - 1]}"; groups+=("${more[@]}") ;;
	esac
done
mapfile -t groups < <(printf '%s\n' "${groups[@]}" | sort -u | grep .)
mapfile -t san_groups < <(printf '%s\n' "${san_groups[@]}" | sort -u | grep .)
baseline_ok=1
check_baseline() {      # DIR ID SANITIZE GROUP...
	local out
	out=$(run_groups "$@") || { echo "mutants: baseline FAILED in group $out"; return 1; }
}
if [ ${#san_groups[@]} -gt 0 ]; then
	cp -pR "$work/base" "$work/base-san"
	for p in smtpd smtp_send; do touch "$work/base-san/$p.c"; done
	if ! { build "$work/base-san" smtpd 1 && build "$work/base-san" smtp_send 1; } >"$work/base-san.log" 2>&1; then
		cat "$work/base-san.log"
		echo "mutants: the sanitizer build failed"
		exit 1
	fi
fi
half=$(( (${#groups[@]} + 1) / 2 ))
check_baseline "$work/base" b1 "" "${groups[@]:0:half}" & b1=$!
check_baseline "$work/base" b2 "" "${groups[@]:half}" & b2=$!
wait $b1 || baseline_ok=0
wait $b2 || baseline_ok=0
if [ ${#san_groups[@]} -gt 0 ]; then
	check_baseline "$work/base-san" b3 1 "${san_groups[@]}" || baseline_ok=0
fi
if [ $baseline_ok = 0 ]; then
	echo "mutants: the groups must pass on the unchanged code first; nothing was mutated"
	exit 1
fi
echo "mutants: baseline passes (${#groups[@]} groups, ${#san_groups[@]} with sanitizers) after $(( $(date +%s) - start )) s"

# Mutants, JOBS at a time; results printed in list order as they come.
next=0
print_ready() {
	local i verdict change
	while [ $next -lt ${#todo[@]} ]; do
		i=${todo[next]}
		if [[ ${M_NOTE[i - 1]} == equivalent:* ]] && [ ! -f "$work/result.$i" ]; then
			echo "equivalent (${M_NOTE[i - 1]#equivalent: })" >"$work/result.$i"
		fi
		[ -f "$work/result.$i" ] || return 0
		verdict=$(cat "$work/result.$i")
		change="$(show "${M_FROM[i - 1]}")  =>  $(show "${M_TO[i - 1]}")"
		printf '%3d %s:%s  %s\n      %s\n' "$i" "${M_FILE[i - 1]}" "$(cat "$work/line.$i" 2>/dev/null || echo '?')" \
			"$change" "$verdict"
		case $verdict in
		killed*) killed=$((killed + 1)) ;;
		SURVIVED) survived=$((survived + 1)) ;;
		equivalent*) equivalent=$((equivalent + 1)) ;;
		*) broken=$((broken + 1)) ;;
		esac
		next=$((next + 1))
	done
}
killed=0 survived=0 equivalent=0 broken=0
running=0
for i in "${todo[@]}"; do
	[ -f "$work/result.$i" ] && continue
	[[ ${M_NOTE[i - 1]} == equivalent:* ]] && continue
	if [ $running -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
	print_ready
	run_mutant "$i" &
	running=$((running + 1))
done
wait
print_ready

echo "mutants: $killed killed, $survived survived, $equivalent equivalent"
total=$((killed + survived))
[ $total -gt 0 ] && echo "mutants: score $((100 * killed / total)) % of $total non-equivalent mutants killed, in $(( $(date +%s) - start )) s"
if [ $broken -gt 0 ]; then
	echo "mutants: $broken mutant(s) NO-MATCH, BUILD-FAILED or BROKEN: update tests/mutants.list"
fi
[ $survived -eq 0 ] && [ $broken -eq 0 ]

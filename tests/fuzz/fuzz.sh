#!/usr/bin/env bash
# tests/fuzz/fuzz.sh - build the libFuzzer harnesses and fuzz each target.
#
#   tests/fuzz/fuzz.sh [seconds-per-target] [target...]     (default 60, all)
#
# Each harness includes smtpd.c or smtp_send.c with its main renamed, so
# the programs stay single files.  First every committed input (seeds/
# and regress/, where each crash ever found is kept) is replayed; then
# each target is fuzzed for the given time, with new inputs kept in a
# scratch corpus outside the repository.  A crash fails the run; its
# input is replayed with the sanitizer report shown, and should be copied
# into regress/<target>/ once fixed.  The binaries, corpora and artifacts
# go to a private directory (mktemp; FUZZ_DIR names a fixed one instead),
# removed after a clean run: parallel runs never share one.
set -u
cd "$(dirname "$0")" || exit 1
SECONDS_EACH=${1:-60}
shift 2>/dev/null
TARGETS=${*:-session smtpd_address aliases dns reply ehlo send_address headers queue_entry queue_roundtrip}
CC=${FUZZ_CC:-clang}
if [ -n "${FUZZ_DIR:-}" ]; then
	out=$FUZZ_DIR
	mkdir -p "$out"
else
	out=$(mktemp -d "${TMPDIR:-/tmp}/smtp-fuzz.XXXXXX") || exit 1
fi
failed=0
for t in $TARGETS; do
	# a harness that needs a second file says so: "fuzz.sh: also compile X.c"
	extra=$(sed -n 's/^ \* fuzz\.sh: also compile \([a-z_]*\.c\)$/\1/p' "fuzz_$t.c")
	# shellcheck disable=SC2086
	if ! $CC -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -pthread -o "$out/fuzz_$t" "fuzz_$t.c" $extra; then
		echo "fuzz: $t: build failed"
		failed=1
		continue
	fi
	inputs=$(find "seeds/$t" "regress/$t" -type f 2>/dev/null)
	# -close_fd_mask=2 silences the programs' logs (libFuzzer keeps its own)
	# shellcheck disable=SC2086
	if [ -n "$inputs" ] && ! "$out/fuzz_$t" -close_fd_mask=2 $inputs >"$out/$t.replay" 2>&1; then
		echo "fuzz: $t: a committed input fails:"
		"$out/fuzz_$t" $inputs 2>&1 | tail -n 40
		failed=1
		continue
	fi
	mkdir -p "$out/corpus-$t" "$out/artifacts-$t"
	rm -f "$out/artifacts-$t"/*
	"$out/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -close_fd_mask=2 \
		-print_final_stats=1 -artifact_prefix="$out/artifacts-$t/" "$out/corpus-$t" "seeds/$t" >"$out/$t.log" 2>&1
	rc=$?
	echo "fuzz: $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$') runs" \
	     "in ${SECONDS_EACH}s, $(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -n 1), exit $rc"
	if [ "$rc" != 0 ]; then
		failed=1
		for a in "$out/artifacts-$t"/*; do
			[ -e "$a" ] || continue
			echo "fuzz: $t: failing input $a; the report:"
			"$out/fuzz_$t" "$a" 2>&1 | tail -n 40
		done
	fi
done
if [ "$failed" = 0 ]; then
	echo "fuzz: all targets clean"
	[ -n "${FUZZ_DIR:-}" ] || rm -rf "$out"
else
	echo "fuzz: FAILED (binaries, corpora and failing inputs are in $out)"
fi
exit $failed

#!/usr/bin/env bash
# tests/sanitize.sh - the whole test suite with every program built with
# AddressSanitizer and UndefinedBehaviorSanitizer (leak checking on).
# Reports go to files, one per process (forked sessions included); any
# report fails the run.  The normal build is restored afterwards.
set -u
cd "$(dirname "$0")/.." || exit 1
# clang when there is one: its UBSan also checks pointer arithmetic (NULL + 0)
CC=${CC:-$(command -v clang >/dev/null && echo clang || echo cc)}
logs=$(mktemp -d "${TMPDIR:-/tmp}/sanitize.XXXXXX") || exit 1
make -s clean
if ! make -s CC="$CC" CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" all; then
	echo "sanitize: build failed"
	exit 1
fi
# valgrind cannot run sanitized programs: the valgrind group is skipped
SANITIZED=1 \
ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1" \
UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1" \
	./test.sh "$@"
rc=$?
reports=$(ls "$logs" | wc -l | tr -d ' ')
if [ "$reports" != 0 ]; then
	echo "sanitize: $reports report(s):"
	head -n 40 "$logs"/*
	rc=1
fi
rm -rf "$logs"
make -s clean
make -s all
echo "sanitize: $([ $rc = 0 ] && echo clean || echo FAILED)"
exit $rc

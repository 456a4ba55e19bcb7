#!/usr/bin/env bash
# bench.sh - messages per second into Maildir, 4 KiB messages, 20 clients:
# one connection per message, then reused connections.  Numbers, not a test.
set -u
cd "$(dirname "$0")/.." || exit 1
make -s all tests/bench || exit 1
dir=$(mktemp -d "${TMPDIR:-/tmp}/smtpd-bench.XXXXXX") || exit 1
mkdir -p "$dir/mail/bench"
(cd "$dir" && exec "$OLDPWD/smtpd" -p 0 -n bench.test -c 40 -m mail) 2>"$dir/log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for i in $(seq 1 100); do grep -qs listening "$dir/log" && break; sleep 0.05; done
port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$dir/log")
./tests/bench -c 20 -n ${BENCH_N:-50} 127.0.0.1 "$port" bench@localhost
./tests/bench -c 20 -n ${BENCH_N:-50} -r 127.0.0.1 "$port" bench@localhost
echo "stored: $(ls "$dir/mail/bench/new" | wc -l) files"

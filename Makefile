# Makefile for the teaching MTA: smtpd (server), smtp_send (client), test helpers.
#   make            build
#   make test       build and run ./test.sh (loopback only)
#   make demo       a message's journey on a loopback internet; make demo-zh: in Chinese
#   make lab-up     that internet kept running (lab-down stops it, lab-clean
#                   also removes its mailboxes, queues and logs)
#   make test-sanitize  the tests under ASan and UBSan;  make fuzz  libFuzzer
#   make mutate     mutation testing: does the suite catch tests/mutants.list?
#   make bench      messages per second;  make bench-peers  beside Postfix
#   make install PREFIX=/usr/local
#   make clean
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic
PREFIX  ?= /usr/local
PROGS    = smtpd smtp_send
HELPERS  = tests/chat tests/dnsd tests/fakesmtp tests/trickle tests/stress tests/busyports

all: $(PROGS) $(HELPERS)

smtpd: smtpd.c
	$(CC) $(WARN) $(CFLAGS) -o $@ smtpd.c $(LDFLAGS)

smtp_send: smtp_send.c
	$(CC) $(WARN) $(CFLAGS) -o $@ smtp_send.c $(LDFLAGS)

tests/dnsd: tests/dnsd.c
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/dnsd.c $(LDFLAGS)

tests/fakesmtp: tests/fakesmtp.c
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/fakesmtp.c $(LDFLAGS)

tests/trickle: tests/trickle.c
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/trickle.c $(LDFLAGS)

tests/stress: tests/stress.c tests/client.h
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/stress.c $(LDFLAGS)

tests/chat: tests/chat.c
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/chat.c $(LDFLAGS)

tests/busyports: tests/busyports.c
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/busyports.c $(LDFLAGS)

test: all
	./test.sh

# the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
test-sanitize:
	./tests/sanitize.sh

# mutants of smtpd.c and smtp_send.c, each in a scratch copy, against the
# groups that should kill them (tests/mutants.sh, tests/mutants.list)
mutate:
	./tests/mutants.sh

# libFuzzer (clang): every target FUZZ_SECONDS seconds
FUZZ_SECONDS ?= 60
fuzz:
	./tests/fuzz/fuzz.sh $(FUZZ_SECONDS)

tests/bench: tests/bench.c tests/client.h
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/bench.c $(LDFLAGS)

tests/peerbench: tests/peerbench.c tests/client.h
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/peerbench.c $(LDFLAGS)

# a mail's whole journey on a loopback internet, step by step
demo: all
	./lab/lab.sh demo

# a Chinese message: IDN, SMTPUTF8, and the downgrade for an old server
demo-zh: all
	./lab/lab.sh demo-zh

# the same internet kept running, to poke with nc, telnet, smtp_send
lab-up: all
	./lab/lab.sh up

lab-down:
	./lab/lab.sh down

# the lab's state (mailboxes, queues, logs in lab/run/) removed: a fresh start
lab-clean: lab-down
	rm -rf lab/run

# messages per second (a benchmark: it reports numbers, it does not judge)
bench: all tests/bench
	./tests/bench.sh

# the same loads against smtpd and a private Postfix, side by side, with
# the machine's limits measured in the same run (needs root and postfix)
bench-peers: all tests/peerbench
	./tests/bench-peers.sh

install: $(PROGS)
	mkdir -p $(DESTDIR)$(PREFIX)/sbin
	cp smtpd $(DESTDIR)$(PREFIX)/sbin/
	mkdir -p $(DESTDIR)$(PREFIX)/bin
	cp smtp_send $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -f $(PROGS) $(HELPERS) tests/bench tests/peerbench

.PHONY: all test test-sanitize mutate fuzz demo demo-zh lab-up lab-down lab-clean bench bench-peers install clean

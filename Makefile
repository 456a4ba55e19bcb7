# Makefile for the teaching MTA: smtpd (server) and its test helpers.
#   make            build
#   make test       build and run ./test.sh (loopback only)
#   make install PREFIX=/usr/local
#   make clean
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic
PREFIX  ?= /usr/local
PROGS    = smtpd
HELPERS  = tests/chat

all: $(PROGS) $(HELPERS)

smtpd: smtpd.c
	$(CC) $(WARN) $(CFLAGS) -o $@ smtpd.c $(LDFLAGS)

tests/chat: tests/chat.c
	$(CC) $(WARN) $(CFLAGS) -o $@ tests/chat.c $(LDFLAGS)

test: all
	./test.sh

install: $(PROGS)
	mkdir -p $(DESTDIR)$(PREFIX)/sbin
	cp $(PROGS) $(DESTDIR)$(PREFIX)/sbin/

clean:
	rm -f $(PROGS) $(HELPERS)

.PHONY: all test install clean

/*
 * fakesmtp.c - a misbehaving SMTP server for the tests (not part of the MTA)
 *
 *   fakesmtp [-a addr] [-p port] [-n name] [-e name] [-o file] mode
 *
 * Serves connections one after another, each the same way.  Modes that
 * say little or nothing:
 *   greet421   "421 busy" instead of the greeting, then close
 *   greet554   "554 no service" instead of the greeting, then close
 *   stall      accept, then say nothing (a tarpit)
 *   endless    a multi-line greeting that never ends
 *   longline   a greeting line of 10 MB without CRLF
 *   garbage    a greeting that is not SMTP
 * Modes that hold a dialogue (EHLO offers PIPELINING, SIZE and 8BITMIME
 * unless the mode says otherwise; everything else is accepted):
 *   plain      a well-behaved server
 *   rcpt451    every RCPT gets 451 (and DATA 554)
 *   heloonly   an old server: greets "SMTP", EHLO gets 500 (unknown
 *              command, as RFC 821 servers said), HELO works
 *   no8bit     EHLO offers only PIPELINING and SIZE
 *   utf8       EHLO offers SMTPUTF8 too (RFC 6531)
 *   bareehlo   the EHLO reply ends in a bare "250" line
 *   bigehlo    an EHLO reply of six lines, 8 KiB: four of 2 KiB, SIZE, 8BITMIME
 *   data250    DATA is answered 250 instead of 354 (out of step)
 *   rcpt421    the second RCPT of a transaction gets 421, yet the server
 *              goes on as if nothing happened
 *   rcpt354    the second RCPT of a transaction gets 354 (out of step)
 *   mail550    MAIL gets 550, and yet DATA gets 354 (out of step: RFC
 *              2920 3.1 wants 503 or 554 there)
 *   mail550c   MAIL gets 550, RCPTs 503, and the second RCPT 421 before
 *              the connection closes (an error limit, as Postfix's)
 *   limit5     at most 5 RCPTs per transaction: 452 4.5.3 for the others
 *   rcptlong   every RCPT gets a 550 reply of 1,020 octets
 * -n names the server in the greeting [fake.test], -e in the EHLO reply
 * [the -n name].  -o appends every byte received to a file.  -p 0 takes a
 * free port; "fakesmtp: listening addr=... port=N" on stderr.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINE10 "xxxxxxxxxx"
#define LINE100 LINE10 LINE10 LINE10 LINE10 LINE10 LINE10 LINE10 LINE10 LINE10 LINE10

static const char *greet_name = "fake.test", *ehlo_name, *mode;
static int capture = -1;

static int put(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
}

static int is(const char *m)
{
	return strcmp(mode, m) == 0;
}

/* A reply line of n octets before its CRLF: text, then padding. */
static void put_long_line(int fd, const char *text, size_t n)
{
	char line[4096];

	snprintf(line, sizeof line, "%s", text);
	memset(line + strlen(text), 'K', n - strlen(text));
	memcpy(line + n, "\r\n", 3);
	put(fd, line);
}

/* The reply to EHLO: the extensions this mode offers. */
static void ehlo(int fd)
{
	char first[300];

	if (is("heloonly")) {           /* RFC 821 knew no EHLO, nor x.y.z codes */
		put(fd, "500 Syntax error, command unrecognized\r\n");
		return;
	}
	snprintf(first, sizeof first, "250-%s Hello ", ehlo_name);
	if (is("bigehlo")) {
		/* 2047 + 2047 + 2047 + 2044 octets, joined by 3 newlines: the
		 * fifth line starts at 8188, 4 octets before 8 KiB; a sixth */
		put_long_line(fd, first, 2047);
		put_long_line(fd, "250-", 2047);
		put_long_line(fd, "250-", 2047);
		put_long_line(fd, "250-", 2044);
		put(fd, "250-SIZE 10240000\r\n250 8BITMIME\r\n");
		return;
	}
	first[strlen(first) - 1] = '\0';
	put(fd, first);
	put(fd, "\r\n");
	if (is("bareehlo"))
		put(fd, "250-PIPELINING\r\n250\r\n");
	else if (is("no8bit"))
		put(fd, "250-PIPELINING\r\n250 SIZE 10240000\r\n");
	else if (is("utf8"))
		put(fd, "250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
	else
		put(fd, "250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
}

/* One command line; returns 1 when the session ends. */
static int command(int fd, const char *cmd, int *rcpts, int *in_data)
{
	char reply[1100];

	if (!strncasecmp(cmd, "EHLO", 4)) {
		ehlo(fd);
	} else if (!strncasecmp(cmd, "MAIL", 4)) {
		*rcpts = 0;
		put(fd, is("mail550") || is("mail550c") ? "550 5.7.1 sender refused\r\n" : "250 ok\r\n");
	} else if (!strncasecmp(cmd, "RCPT", 4)) {
		++*rcpts;
		if (is("rcpt451"))
			put(fd, "451 4.3.0 try again later\r\n");
		else if (is("rcpt354") && *rcpts == 2)
			put(fd, "354 go ahead\r\n");
		else if (is("mail550c") && *rcpts == 2) {
			put(fd, "421 4.7.0 fake.test too many errors\r\n");
			return 1;
		} else if (is("mail550c"))
			put(fd, "503 5.5.1 need MAIL\r\n");
		else if (is("rcpt421") && *rcpts == 2)
			put(fd, "421 4.3.2 fake.test closing the connection\r\n");
		else if (is("limit5") && *rcpts > 5)
			put(fd, "452 4.5.3 Error: too many recipients\r\n");
		else if (is("rcptlong")) {
			snprintf(reply, sizeof reply, "550 5.1.1 %.1010s\r\n",
				 LINE100 LINE100 LINE100 LINE100 LINE100 LINE100 LINE100 LINE100 LINE100 LINE100 LINE100);
			put(fd, reply);
		} else
			put(fd, "250 ok\r\n");
	} else if (!strncasecmp(cmd, "DATA", 4)) {
		if (is("rcpt451")) {
			put(fd, "554 5.5.1 no valid recipients\r\n");
		} else if (is("data250")) {
			put(fd, "250 2.0.0 ok, but no 354\r\n");
		} else {
			put(fd, "354 go ahead\r\n");
			*in_data = 1;
		}
	} else if (!strncasecmp(cmd, "QUIT", 4)) {
		put(fd, "221 2.0.0 bye\r\n");
		return 1;
	} else {
		put(fd, "250 ok\r\n");
	}
	return 0;
}

/* A minimal SMTP dialogue: read lines, answer each. */
static void dialogue(int fd)
{
	char buf[8192], greeting[300];
	size_t have = 0;
	int in_data = 0, rcpts = 0;

	/* an old server greets without "ESMTP", the word that tells a
	 * client it may try EHLO */
	snprintf(greeting, sizeof greeting, is("heloonly") ? "220 %s SMTP\r\n" : "220 %s ESMTP fake\r\n",
		 greet_name);
	put(fd, greeting);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		char *nl;
		ssize_t r;
		if (poll(&p, 1, 10000) <= 0 || (r = read(fd, buf + have, sizeof buf - 1 - have)) <= 0)
			return;
		if (capture >= 0 && write(capture, buf + have, (size_t)r) != r)
			perror("fakesmtp: capture");
		have += (size_t)r;
		buf[have] = '\0';
		while ((nl = memchr(buf, '\n', have))) {
			*nl = '\0';
			if (in_data) {
				if (!strcmp(buf, ".\r") || !strcmp(buf, ".")) {
					in_data = 0;
					put(fd, "250 ok\r\n");
				}
			} else if (command(fd, buf, &rcpts, &in_data)) {
				return;
			}
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have + 1);
		}
		if (have == sizeof buf - 1)     /* a line too long for us: drop it */
			have = 0;
	}
}

static void serve(int fd)
{
	int i;

	if (is("greet421"))
		put(fd, "421 4.3.2 fake is busy\r\n");
	else if (is("greet554"))
		put(fd, "554 5.3.2 fake takes no mail\r\n");
	else if (is("stall"))
		poll(NULL, 0, 20000);
	else if (is("endless"))
		for (i = 0; i < 2000000 && put(fd, "220-and more\r\n") == 0; i++)
			;
	else if (is("longline"))
		for (i = 0, put(fd, "220 "); i < 100000 && put(fd, LINE100) == 0; i++)
			;
	else if (is("garbage"))
		put(fd, "HTTP/1.1 400 Bad Request\r\n\r\n");
	else
		dialogue(fd);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *port = "0";
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char bound[16];
	int c, lfd, one = 1;

	while ((c = getopt(argc, argv, "a:p:n:e:o:")) != -1) {
		if (c == 'a') addr = optarg;
		else if (c == 'p') port = optarg;
		else if (c == 'n') greet_name = optarg;
		else if (c == 'e') ehlo_name = optarg;
		else if (c == 'o') {
			if ((capture = open(optarg, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0) {
				perror(optarg);
				return 1;
			}
		} else return 2;
	}
	if (argc - optind != 1)
		return 2;
	mode = argv[optind];
	if (!ehlo_name)
		ehlo_name = greet_name;
	signal(SIGPIPE, SIG_IGN);
	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(addr, port, &hints, &ai) != 0)
		return 2;
	lfd = socket(ai->ai_family, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) < 0) {
		perror("fakesmtp");
		return 1;
	}
	freeaddrinfo(ai);
	getnameinfo((struct sockaddr *)&ss, len, NULL, 0, bound, sizeof bound, NI_NUMERICSERV);
	fprintf(stderr, "fakesmtp: listening addr=%s port=%s mode=%s\n", addr, bound, mode);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		fprintf(stderr, "fakesmtp: connection\n");
		serve(fd);
		close(fd);
		fprintf(stderr, "fakesmtp: closed\n");
	}
}

/*
 * fakesmtp.c - a misbehaving SMTP server for the tests (not part of the MTA)
 *
 *   fakesmtp [-a addr] [-p port] mode
 *
 * Serves connections one after another, each the same way:
 *   greet421   "421 busy" instead of the greeting, then close
 *   greet554   "554 no service" instead of the greeting, then close
 *   stall      accept, then say nothing (a tarpit)
 *   endless    a multi-line greeting that never ends
 *   longline   a greeting line of 10 MB without CRLF
 *   garbage    a greeting that is not SMTP
 *   rcpt451    a normal server that answers every RCPT with 451
 *   heloonly   an old server: EHLO gets 502, HELO works, mail is accepted
 * -p 0 takes a free port; "fakesmtp: listening addr=... port=N" on stderr.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
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

static int put(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
}

/* A minimal SMTP dialogue for rcpt451 and heloonly: read lines, answer each. */
static void dialogue(int fd, int rcpt451)
{
	char buf[4096];
	size_t have = 0;
	int in_data = 0;

	put(fd, "220 fake ESMTP\r\n");
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		char *nl;
		ssize_t r;
		if (poll(&p, 1, 10000) <= 0 || (r = read(fd, buf + have, sizeof buf - 1 - have)) <= 0)
			return;
		have += (size_t)r;
		buf[have] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			if (in_data) {
				if (!strcmp(buf, ".\r") || !strcmp(buf, ".")) {
					in_data = 0;
					put(fd, "250 ok\r\n");
				}
			} else if (!strncasecmp(buf, "EHLO", 4)) {
				put(fd, rcpt451 ? "250-fake\r\n250 PIPELINING\r\n" : "502 5.5.1 what is EHLO?\r\n");
			} else if (!strncasecmp(buf, "RCPT", 4) && rcpt451) {
				put(fd, "451 4.3.0 try again later\r\n");
			} else if (!strncasecmp(buf, "DATA", 4)) {
				put(fd, rcpt451 ? "554 5.5.1 no valid recipients\r\n" : "354 go ahead\r\n");
				in_data = !rcpt451;
			} else if (!strncasecmp(buf, "QUIT", 4)) {
				put(fd, "221 bye\r\n");
				return;
			} else {
				put(fd, "250 ok\r\n");
			}
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have + 1);
		}
	}
}

static void serve(int fd, const char *mode)
{
	int i;

	if (!strcmp(mode, "greet421"))
		put(fd, "421 4.3.2 fake is busy\r\n");
	else if (!strcmp(mode, "greet554"))
		put(fd, "554 5.3.2 fake takes no mail\r\n");
	else if (!strcmp(mode, "stall"))
		poll(NULL, 0, 20000);
	else if (!strcmp(mode, "endless"))
		for (i = 0; i < 2000000 && put(fd, "220-and more\r\n") == 0; i++)
			;
	else if (!strcmp(mode, "longline"))
		for (i = 0, put(fd, "220 "); i < 100000 && put(fd, LINE100) == 0; i++)
			;
	else if (!strcmp(mode, "garbage"))
		put(fd, "HTTP/1.1 400 Bad Request\r\n\r\n");
	else if (!strcmp(mode, "rcpt451") || !strcmp(mode, "heloonly"))
		dialogue(fd, !strcmp(mode, "rcpt451"));
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *port = "0";
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char bound[16];
	int c, lfd, one = 1;

	while ((c = getopt(argc, argv, "a:p:")) != -1) {
		if (c == 'a') addr = optarg;
		else if (c == 'p') port = optarg;
		else return 2;
	}
	if (argc - optind != 1)
		return 2;
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
	fprintf(stderr, "fakesmtp: listening addr=%s port=%s mode=%s\n", addr, bound, argv[optind]);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		fprintf(stderr, "fakesmtp: connection\n");
		serve(fd, argv[optind]);
		close(fd);
	}
}

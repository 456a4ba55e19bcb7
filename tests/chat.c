/*
 * chat.c - a scripted SMTP client for the tests (not part of the MTA)
 *
 *   chat [-l] [-k] [-w] [-d ms] [-s source] [-H seconds] [-T seconds] host port < script
 *   chat -i host port          talk to a server by hand, as "nc -C" does
 *
 * Connects to host:port, waits for the greeting (one whole reply) and
 * prints every byte the server sends on stdout, until the server closes.
 *   (default)  stdin is sent in one write(): a pipelining client.
 *   -l         lock step: one line, then wait for its whole reply; after a
 *              354 the message lines go out up to the "." line.
 *   -k         send stdin, then hang up at once (an abrupt disconnect).
 *   -w         do not wait for the greeting before sending.
 *   -d ms      with -l: wait ms milliseconds before each message line (a
 *              slow but steady client).
 *   -s addr    connect from this source address (e.g. 127.0.0.200: the
 *              whole of 127.0.0.0/8 is loopback), to play another host.
 *   -H s       hold: stay idle s seconds after the greeting, then go on.
 *   -T s       give up after s seconds in all [10].
 *   -i         interactive: every line typed goes out with CR LF (what
 *              "nc -C" does, for a machine without nc or telnet); what
 *              the server says is printed as it comes; no time limit.
 * Exit status: 0 server closed, 3 time limit reached, 1 error.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
#include <netdb.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USAGE "usage: chat [-l] [-k] [-w] [-d ms] [-s source] [-H s] [-T s] host port < script\n" \
	"       chat -i host port     (type SMTP by hand: each line goes out with CR LF)\n"
#define CMD_MAX 1000            /* -i: a typed line longer than this goes out in parts */

static long line_delay_ms;      /* -d */

static int fd;
static time_t deadline;
static char reply_line[8192];   /* the line being received, for -l */
static size_t reply_len;
static char last_code[4];       /* code of the last whole reply */

/* Read what is there (waiting at most until the deadline), print it.
 * Returns 1 if a whole reply ended in it (last line "NNN "), 0 if not,
 * -1 when the server closed, -2 at the deadline. */
static int receive_until(time_t until)
{
	char buf[65536];
	struct pollfd p = { fd, POLLIN, 0 };
	int left = (int)(until - time(NULL)), done = 0;
	ssize_t n, i;

	if (left <= 0 || poll(&p, 1, left * 1000) <= 0)
		return -2;
	n = read(fd, buf, sizeof buf);
	if (n <= 0)
		return -1;
	fwrite(buf, 1, (size_t)n, stdout);
	fflush(stdout);
	for (i = 0; i < n; i++) {
		if (reply_len < sizeof reply_line - 1)
			reply_line[reply_len++] = buf[i];
		if (buf[i] == '\n') {
			done = (reply_len < 5 || reply_line[3] != '-');
			if (done)
				memcpy(last_code, reply_line, 3);
			reply_len = 0;
		}
	}
	return done;
}

static int receive(void)
{
	return receive_until(deadline);
}

static int wait_reply(void)
{
	int r;
	while ((r = receive()) == 0)
		;
	return r;
}

static int send_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static char *read_stdin(size_t *len)
{
	size_t cap = 65536;
	char *b = malloc(cap);
	ssize_t n;

	*len = 0;
	while (b && (n = read(0, b + *len, cap - *len)) > 0) {
		*len += (size_t)n;
		if (*len == cap && !(b = realloc(b, cap *= 2)))
			break;
	}
	return b;
}

/* -l: a line, its reply, the next line... (RFC 5321 without PIPELINING). */
static int lock_step(const char *p, size_t len)
{
	const char *end = p + len;
	int in_data = 0, r = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		int dot = (n >= 2 && p[0] == '.' && (p[1] == '\r' || p[1] == '\n'));
		if (in_data && line_delay_ms > 0) {
			struct timespec ts = { line_delay_ms / 1000, (line_delay_ms % 1000) * 1000000L };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		if (send_all(p, n) < 0)
			break;
		p += n;
		if (in_data && !dot)
			continue;
		r = wait_reply();
		if (r < 0)
			return r;
		in_data = !in_data && memcmp(last_code, "354", 3) == 0;
	}
	return r;
}

/* -i: lines from stdin out with CR LF, the server's bytes to stdout,
 * whichever comes first, until the server closes (or stdin ends and the
 * server has said its last word within a second). */
static int interactive(void)
{
	char in[CMD_MAX], out[CMD_MAX + 2], buf[8192];
	size_t have = 0;

	for (;;) {
		struct pollfd p[2] = { { fd, POLLIN, 0 }, { 0, POLLIN, 0 } };
		ssize_t n;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (p[0].revents) {
			if ((n = read(fd, buf, sizeof buf)) <= 0)
				return 0;               /* the server closed */
			fwrite(buf, 1, (size_t)n, stdout);
			fflush(stdout);
		}
		if (!p[1].revents)
			continue;
		if ((n = read(0, in + have, sizeof in - have)) <= 0) {
			deadline = time(NULL) + 1;      /* end of input: the last reply */
			while (receive() >= 0)
				;
			return 0;
		}
		have += (size_t)n;
		for (;;) {                      /* every whole line, with CR LF */
			char *nl = memchr(in, '\n', have);
			size_t len;
			if (!nl && have < sizeof in)
				break;
			len = nl ? (size_t)(nl - in) : have;
			if (len > 0 && in[len - 1] == '\r')
				len--;
			memcpy(out, in, len);
			memcpy(out + len, "\r\n", 2);
			if (send_all(out, len + 2) < 0)
				return 1;
			len = nl ? (size_t)(nl - in) + 1 : have;
			memmove(in, in + len, have - len);
			have -= len;
		}
	}
}

/* -s: bind the socket to a source address before connecting. */
static int bind_source(int sock, const char *source)
{
	struct addrinfo hints, *ai;
	int r;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
	if (getaddrinfo(source, NULL, &hints, &ai) != 0) {
		fprintf(stderr, "chat: bad source address %s\n", source);
		return -1;
	}
	r = bind(sock, ai->ai_addr, ai->ai_addrlen);
	if (r < 0)
		perror("chat: bind");
	freeaddrinfo(ai);
	return r;
}

int main(int argc, char **argv)
{
	struct addrinfo hints, *ai;
	int c, lock = 0, hangup = 0, greet = 1, hold = 0, limit = 10, talk = 0, r;
	const char *source = NULL;
	size_t len;
	char *script;

	while ((c = getopt(argc, argv, "lkwid:s:H:T:h")) != -1) {
		switch (c) {
		case 'i': talk = 1; break;
		case 'l': lock = 1; break;
		case 'k': hangup = 1; break;
		case 'w': greet = 0; break;
		case 'd': line_delay_ms = atol(optarg); break;
		case 's': source = optarg; break;
		case 'H': hold = atoi(optarg); break;
		case 'T': limit = atoi(optarg); break;
		default:
			fprintf(stderr, "%s", USAGE);
			return c == 'h' ? 0 : 1;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "%s", USAGE);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai) != 0)
		return 1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && source && bind_source(fd, source) < 0) {
		freeaddrinfo(ai);
		return 1;
	}
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("chat: connect");
		freeaddrinfo(ai);
		return 1;
	}
	freeaddrinfo(ai);
	if (talk)
		return interactive();
	deadline = time(NULL) + limit;
	script = read_stdin(&len);
	if (!script)
		return 1;
	r = greet ? wait_reply() : 0;
	if (r >= 0 && hold > 0) {
		time_t until = time(NULL) + hold;
		while (r >= 0 && time(NULL) < until)
			if (receive_until(until) == -1)
				r = -1;
	}
	if (r >= 0 && hangup) {
		send_all(script, len);
		r = -1;
	} else if (r >= 0 && lock) {
		r = lock_step(script, len);
	} else if (r >= 0) {
		send_all(script, len);          /* a closed server is no error */
	}
	while (r >= 0)
		r = receive();
	free(script);
	return r == -2 ? 3 : 0;
}

/*
 * client.h - the few lines of SMTP client that tests/bench.c,
 * tests/stress.c and tests/peerbench.c share: read one whole reply,
 * write all bytes.
 * One connection per process (fd, in, have are per process).
 */
#include <sys/socket.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fd;                  /* the connection */
static char in[65536];          /* what the server sent, not yet used */
static size_t have;

/* Read until a whole reply has arrived (its last line "NNN "), at most
 * 10 s per read; return its code, -1 on error or timeout. */
static int reply(void)
{
	for (;;) {
		char *line = in, *nl;
		struct pollfd p = { 0, POLLIN, 0 };
		ssize_t r;
		while ((nl = memchr(line, '\n', have - (size_t)(line - in)))) {
			if (nl - line >= 4 && line[3] == ' ') {
				int code = atoi(line);
				have -= (size_t)(nl + 1 - in);
				memmove(in, nl + 1, have);
				return code;
			}
			line = nl + 1;
		}
		p.fd = fd;
		if (have == sizeof in || poll(&p, 1, 10000) <= 0 || (r = read(fd, in + have, sizeof in - have)) <= 0)
			return -1;
		have += (size_t)r;
	}
}

static int put(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* host and port as written (numbers only: the tests never ask DNS). */
static struct addrinfo *numeric_address(const char *host, const char *port)
{
	struct addrinfo hints, *ai;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	return getaddrinfo(host, port, &hints, &ai) == 0 ? ai : NULL;
}

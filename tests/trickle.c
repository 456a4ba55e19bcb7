/*
 * trickle.c - many slow clients at once, for the tests (not part of the MTA)
 *
 *   trickle [-n connections] [-i seconds] [-d seconds] [-l seconds] host port
 *
 * Opens n connections (default 200) as fast as it can, then sends one byte
 * of "NOOP\r\n" on each open connection every -i seconds (default 1), for
 * -d seconds in all (default 8), reading whatever the server says.  Then
 * prints one line:
 *   greeted=N refused=N refused_late=N timed_out=N
 * greeted: the first reply was 220; refused: it was 421 4.3.2 (session
 * limit); refused_late: of those, how many came -l seconds (default 3) or
 * more after the connection, i.e. not at once but after waiting;
 * timed_out: a 421 4.4.2 arrived later (the server's timeout).
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
#include <time.h>
#include <unistd.h>

#define MAXC 1000

struct client { int fd, first, timed_out, sent; double opened, answered; char seen[64]; size_t nseen; };

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static struct client cl[MAXC];
	static struct pollfd pfd[MAXC];
	int c, n = 200, interval = 1, duration = 8, late = 3, i, greeted = 0, refused = 0, slow = 0, timed = 0;
	struct addrinfo hints, *ai;
	double start, next_byte;

	while ((c = getopt(argc, argv, "n:i:d:l:")) != -1) {
		if (c == 'n') n = atoi(optarg);
		else if (c == 'l') late = atoi(optarg);
		else if (c == 'i') interval = atoi(optarg);
		else if (c == 'd') duration = atoi(optarg);
		else return 2;
	}
	if (argc - optind != 2 || n < 1 || n > MAXC)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai) != 0)
		return 2;
	for (i = 0; i < n; i++) {
		cl[i].opened = now();
		cl[i].fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (cl[i].fd < 0 || connect(cl[i].fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			perror("trickle: connect");
			return 1;
		}
	}
	freeaddrinfo(ai);
	start = now();
	next_byte = start + interval;
	while (now() < start + duration) {
		int live = 0;
		for (i = 0; i < n; i++) {
			pfd[i].fd = cl[i].fd;
			pfd[i].events = POLLIN;
			live += cl[i].fd >= 0;
		}
		if (!live)
			break;
		poll(pfd, (nfds_t)n, 100);
		for (i = 0; i < n; i++) {
			char buf[512];
			ssize_t r;
			if (cl[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(cl[i].fd, buf, sizeof buf);
			if (r <= 0) {
				close(cl[i].fd);
				cl[i].fd = -1;
				continue;
			}
			if (!cl[i].first) {
				cl[i].first = atoi(buf);
				cl[i].answered = now();
				if (cl[i].first == 421 && strncmp(buf, "421 4.3.2", 9) == 0) {
					refused++;
					slow += cl[i].answered - cl[i].opened >= late;
				} else if (cl[i].first == 220) {
					greeted++;
				}
			}
			if (strstr(buf, "421 4.4.2"))
				timed += !cl[i].timed_out++;
		}
		if (now() >= next_byte) {       /* one more byte on every live one */
			for (i = 0; i < n; i++)
				if (cl[i].fd >= 0 && write(cl[i].fd, &"NOOP\r\n"[cl[i].sent++ % 6], 1) < 0) {
					close(cl[i].fd);
					cl[i].fd = -1;
				}
			next_byte += interval;
		}
	}
	for (i = 0; i < n; i++)
		if (cl[i].fd >= 0)
			close(cl[i].fd);
	printf("greeted=%d refused=%d refused_late=%d timed_out=%d\n", greeted, refused, slow, timed);
	return 0;
}

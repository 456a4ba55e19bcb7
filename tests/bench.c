/*
 * bench.c - throughput of an SMTP server, in messages per second
 *
 *   bench [-c clients] [-n messages-per-client] [-s size] [-r] host port rcpt
 *
 * Starts `clients` processes at once; each sends `messages` messages of
 * `size` bytes to rcpt, one connection per message, or with -r all of
 * them over one connection (RSET-free: MAIL, RCPT, DATA repeated).
 * Prints one line: clients, messages, seconds, messages per second.
 * A number, not a pass/fail test: run it with `make bench`.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
#include <sys/wait.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

static int open_session(const struct addrinfo *ai)
{
	have = 0;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 || reply() != 220)
		return -1;
	return put("EHLO bench\r\n", 12) == 0 && reply() == 250 ? 0 : -1;
}

static int one_message(const char *cmds, const char *body)
{
	/* pipelined: MAIL, RCPT, DATA, then the body after 354 */
	if (put(cmds, strlen(cmds)) < 0 || reply() != 250 || reply() != 250 || reply() != 354)
		return -1;
	return put(body, strlen(body)) == 0 && reply() == 250 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int c, clients = 20, per = 50, size = 4096, reuse = 0, i, failed = 0;
	struct addrinfo *ai;
	struct timespec t0, t1;
	char cmds[512], *body;

	while ((c = getopt(argc, argv, "c:n:s:r")) != -1) {
		if (c == 'c') clients = atoi(optarg);
		else if (c == 'n') per = atoi(optarg);
		else if (c == 's') size = atoi(optarg);
		else if (c == 'r') reuse = 1;
		else return 2;
	}
	if (argc - optind != 3)
		return 2;
	if (!(ai = numeric_address(argv[optind], argv[optind + 1])))
		return 2;
	snprintf(cmds, sizeof cmds, "MAIL FROM:<bench@example.com>\r\nRCPT TO:<%s>\r\nDATA\r\n", argv[optind + 2]);
	body = malloc((size_t)size + 64);
	if (!body)
		return 1;
	strcpy(body, "Subject: bench\r\n\r\n");
	for (i = (int)strlen(body); i < size; i += 64)
		strcat(body, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n");
	strcat(body, ".\r\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < clients; i++)
		if (fork() == 0) {
			int k, bad = 0;
			if (reuse && open_session(ai) < 0)
				_exit(1);
			for (k = 0; k < per && !bad; k++) {
				if (!reuse && open_session(ai) < 0) {
					bad = 1;
					break;
				}
				bad = one_message(cmds, body) < 0;
				if (!reuse) {
					put("QUIT\r\n", 6);
					reply();
					close(fd);
				}
			}
			_exit(bad);
		}
	for (i = 0; i < clients; i++) {
		int st;
		wait(&st);
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("clients=%d messages=%d size=%d %s seconds=%.2f msgs_per_sec=%.0f failed_clients=%d\n",
	       clients, clients * per, size, reuse ? "reused-connections" : "one-connection-per-message",
	       secs, clients * per / secs, failed);
	freeaddrinfo(ai);
	free(body);
	return failed ? 1 : 0;
}

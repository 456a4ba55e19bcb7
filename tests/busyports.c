/*
 * busyports.c - holds many TCP ports busy, for the tests (not part of
 * the MTA)
 *
 *   busyports count address
 *
 * Binds count TCP sockets to address, each on a free port the kernel
 * picks (port 0: the same ephemeral range it picks UDP ports from),
 * prints "busy N" on stdout and waits until it is killed.  The dnsd test
 * uses it to make "a free UDP port whose TCP twin is taken" likely.
 * Raise the descriptor limit (ulimit -n) above count first.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct addrinfo hints, *ai;
	int i, n, busy = 0;

	if (argc != 3 || (n = atoi(argv[1])) <= 0) {
		fprintf(stderr, "usage: busyports count address\n");
		return 2;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(argv[2], "0", &hints, &ai) != 0) {
		fprintf(stderr, "busyports: bad address %s\n", argv[2]);
		return 2;
	}
	for (i = 0; i < n; i++) {
		int fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			perror("busyports");
			break;
		}
		busy++;
	}
	freeaddrinfo(ai);
	printf("busy %d\n", busy);
	fflush(stdout);
	for (;;)
		pause();
}

/*
 * peerbench.c - the timing tools of make bench-peers (tests/bench-peers.sh)
 *
 *   peerbench wait DIR N SECONDS command [arg...]
 *       run the command (the load), and time from its start until DIR
 *       holds N more files than before (a message counts as delivered
 *       when its file is in new/); prints "seconds=S files=F status=X
 *       load_cpu=C" (C: the command's CPU seconds, user and system)
 *   peerbench durable DIR WRITERS SECONDS
 *       the machine's durable writes per second, the way a Maildir
 *       delivery does them: create DIR/tmp/NAME, write 4 KiB, fsync,
 *       rename to DIR/new/NAME, fsync DIR/new; WRITERS processes at once;
 *       prints "writes_per_sec=R"
 *   peerbench fork N
 *       fork + _exit + waitpid, N times; prints "usec_per_fork=U"
 *   peerbench latency HOST PORT N RCPT
 *       N sessions one after another, one 4 KiB message each, timed from
 *       the client: connect() to the greeting, and the end of the data to
 *       its reply; prints the medians and the 90th percentiles in us
 *
 * Numbers, not a test.  DIR must be on the file system of the Maildirs.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define WRITE_SIZE  4096    /* the benchmark's message size */
#define POLL_NS  2000000L   /* 2 ms between looks at the directory */
#define WRITERS_MAX    64

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Files in dir (every entry but . and ..); -1 if it cannot be read. */
static long count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int cmd_wait(char **argv)
{
	const char *dir = argv[0];
	long want = atol(argv[1]), before = count_files(dir), have = 0;
	double limit = atof(argv[2]), t0 = now(), t = t0;
	struct timespec pause = { 0, POLL_NS };
	struct rusage ru;
	int status = -1, exited = 0;
	pid_t pid;

	if (before < 0) {
		fprintf(stderr, "peerbench: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if ((pid = fork()) < 0) {
		perror("peerbench: fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[3], argv + 3);
		fprintf(stderr, "peerbench: %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	while (t - t0 < limit) {
		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = 1;
		have = count_files(dir) - before;
		t = now();
		if (have >= want && exited)
			break;
		if (exited && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			break;          /* the load failed: no point in waiting */
		nanosleep(&pause, NULL);
	}
	if (!exited) {
		kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("seconds=%.3f files=%ld status=%d load_cpu=%.3f\n", t - t0, have,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	return have >= want && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* One writer: durable writes into dir until the deadline; returns how many. */
static long durable_writer(const char *dir, int id, double deadline)
{
	char buf[WRITE_SIZE], tmp[4096], new[4096], newdir[4096];
	long n = 0;
	int dfd;

	memset(buf, 'x', sizeof buf);
	snprintf(newdir, sizeof newdir, "%s/new", dir);
	if ((dfd = open(newdir, O_RDONLY)) < 0)
		return -1;
	while (now() < deadline) {
		int fd;
		snprintf(tmp, sizeof tmp, "%s/tmp/w%d.%ld", dir, id, n);
		snprintf(new, sizeof new, "%s/new/w%d.%ld", dir, id, n);
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 ||
		    write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(fd) < 0 ||
		    close(fd) < 0 || rename(tmp, new) < 0 || fsync(dfd) < 0) {
			perror("peerbench: durable write");
			return -1;
		}
		n++;
	}
	close(dfd);
	return n;
}

static int cmd_durable(char **argv)
{
	const char *dir = argv[0];
	int writers = atoi(argv[1]), i, failed = 0;
	double secs = atof(argv[2]), t0, deadline;
	int pipes[WRITERS_MAX][2];
	long total = 0;

	if (writers < 1 || writers > WRITERS_MAX || secs <= 0)
		return 2;
	t0 = now();
	deadline = t0 + secs;
	for (i = 0; i < writers; i++) {
		pid_t pid;
		if (pipe(pipes[i]) < 0 || (pid = fork()) < 0) {
			perror("peerbench");
			return 1;
		}
		if (pid == 0) {
			long n = durable_writer(dir, i, deadline);
			_exit(write(pipes[i][1], &n, sizeof n) == (ssize_t)sizeof n ? 0 : 1);
		}
		close(pipes[i][1]);
	}
	for (i = 0; i < writers; i++) {
		long n = -1;
		if (read(pipes[i][0], &n, sizeof n) != (ssize_t)sizeof n || n < 0)
			failed = 1;
		else
			total += n;
		close(pipes[i][0]);
		wait(NULL);
	}
	if (failed)
		return 1;
	printf("writes_per_sec=%.0f\n", (double)total / (now() - t0));
	return 0;
}

static int cmd_fork(char **argv)
{
	long n = atol(argv[0]), i;
	double t0 = now();

	for (i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("peerbench: fork");
			return 1;
		}
		if (pid == 0)
			_exit(0);
		if (waitpid(pid, NULL, 0) < 0) {
			perror("peerbench: waitpid");
			return 1;
		}
	}
	printf("usec_per_fork=%.1f\n", (now() - t0) * 1e6 / (double)n);
	return 0;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* "name=median/p90" of n samples in seconds, printed in microseconds */
static void print_us(const char *name, double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, by_value);
	printf("%s_us=%.0f/%.0f ", name, v[n / 2] * 1e6, v[n * 9 / 10] * 1e6);
}

/* One session: greeting, EHLO, MAIL RCPT DATA pipelined, the message in
 * one write, QUIT.  Stores the two latencies; -1 on any unexpected reply. */
static int timed_session(const struct addrinfo *ai, const char *cmds, const char *body,
			 double *greet, double *data)
{
	double t0 = now(), t1;

	have = 0;
	if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 || reply() != 220)
		goto fail;
	*greet = now() - t0;
	if (put("EHLO peerbench\r\n", 16) < 0 || reply() != 250)
		goto fail;
	if (put(cmds, strlen(cmds)) < 0 || reply() != 250 || reply() != 250 || reply() != 354)
		goto fail;
	if (put(body, strlen(body)) < 0)
		goto fail;
	t1 = now();
	if (reply() != 250)
		goto fail;
	*data = now() - t1;
	if (put("QUIT\r\n", 6) < 0 || reply() != 221)
		goto fail;
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

static int cmd_latency(char **argv)
{
	struct addrinfo *ai = numeric_address(argv[0], argv[1]);
	int n = atoi(argv[2]), i;
	char cmds[512], body[WRITE_SIZE + 128];
	double *greet, *data;

	if (!ai || n < 1)
		return 2;
	snprintf(cmds, sizeof cmds, "MAIL FROM:<load@peerbench.test>\r\nRCPT TO:<%s>\r\nDATA\r\n", argv[3]);
	snprintf(body, sizeof body, "Subject: latency\r\n\r\n");
	while (strlen(body) < WRITE_SIZE)
		strncat(body, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n",
			sizeof body - strlen(body) - 1);
	strncat(body, ".\r\n", sizeof body - strlen(body) - 1);
	greet = malloc(sizeof *greet * (size_t)n);
	data = malloc(sizeof *data * (size_t)n);
	if (!greet || !data)
		return 1;
	for (i = 0; i < n; i++)
		if (timed_session(ai, cmds, body, &greet[i], &data[i]) < 0) {
			fprintf(stderr, "peerbench: session %d failed\n", i + 1);
			return 1;
		}
	print_us("greeting", greet, n);
	print_us("data_to_250", data, n);
	printf("sessions=%d\n", n);
	free(greet);
	free(data);
	freeaddrinfo(ai);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "wait"))
		return cmd_wait(argv + 2);
	if (argc == 5 && !strcmp(argv[1], "durable"))
		return cmd_durable(argv + 2);
	if (argc == 3 && !strcmp(argv[1], "fork"))
		return cmd_fork(argv + 2);
	if (argc == 6 && !strcmp(argv[1], "latency"))
		return cmd_latency(argv + 2);
	fprintf(stderr, "usage: peerbench wait DIR N SECONDS command [arg...]\n"
		"       peerbench durable DIR WRITERS SECONDS\n"
		"       peerbench fork N\n"
		"       peerbench latency HOST PORT N RCPT\n");
	return 2;
}

/*
 * stress.c - send many messages and check what was kept (for the tests)
 *
 *   stress send [-c clients] [-n messages] [-w ms] host port rcpt ackfile
 *   stress verify [-d] maildir ackfile
 *
 * send: `clients` processes each send `messages` messages, one connection
 * per message, each attempt with a new unique id ("<client>-<k>-<try>").
 * After the 250 that follows the final ".", the id is appended to
 * ackfile: the client's own record of what the server promised to keep.
 * A failed attempt (refused, reset, 4xx) is retried with a new id, 200
 * times at most, 20 ms apart.  -w: each client waits ms milliseconds
 * after each acknowledged message, so a run lasts long enough for the
 * crash test to kill things during it, whatever the machine's speed.
 *
 * verify: reads every file in maildir/new and maildir/tmp.  Every message
 * has a body computed from its id, so a file is whole or it is not.
 * Checks: every acknowledged id is in new/ exactly once (with -d: at
 * least once, duplicates counted: a crash between storing and the 250
 * makes SMTP deliver twice), every file in new/ is whole, and files left
 * in tmp/ belong to unacknowledged messages only.  Prints counts; exit 1
 * on any violation.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The message for an id: a header and 40 lines, some starting with dots. */
static int make_message(const char *id, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, "Subject: stress %s\n\n", id);
	int i;
	for (i = 0; i < 40 && n < size; i++)
		n += (size_t)snprintf(out + n, size - n, "%sline %02d of message %s\n",
				      i % 9 == 0 ? "." : "", i, id);
	return (int)n;
}

#include "client.h"

/* One attempt: connect, EHLO, MAIL, RCPT, DATA, message, ".".  1: acked. */
static int attempt(const struct addrinfo *ai, const char *rcpt, const char *id)
{
	char msg[8192], wire[9000], cmd[600];
	int n = make_message(id, msg, sizeof msg), ok = 0, i;
	size_t w = 0;

	for (i = 0; i < n; i++) {               /* CRLF and dot-stuffing */
		if ((i == 0 || msg[i - 1] == '\n') && msg[i] == '.')
			wire[w++] = '.';
		if (msg[i] == '\n')
			wire[w++] = '\r';
		wire[w++] = msg[i];
	}
	memcpy(wire + w, ".\r\n", 3);
	w += 3;
	have = 0;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	snprintf(cmd, sizeof cmd, "EHLO stress\r\nMAIL FROM:<stress@example.com>\r\nRCPT TO:<%s>\r\nDATA\r\n", rcpt);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 && reply() == 220 && put(cmd, strlen(cmd)) == 0 &&
	    reply() == 250 && reply() == 250 && reply() == 250 && reply() == 354 && put(wire, w) == 0)
		ok = reply() == 250;
	if (ok)
		put("QUIT\r\n", 6);
	close(fd);
	return ok;
}

static int do_send(int argc, char **argv)
{
	int c, clients = 10, per = 30, i;
	long wait_ms = 0;
	struct addrinfo *ai;

	while ((c = getopt(argc, argv, "c:n:w:")) != -1) {
		if (c == 'c') clients = atoi(optarg);
		else if (c == 'n') per = atoi(optarg);
		else if (c == 'w') wait_ms = atol(optarg);
		else return 2;
	}
	if (argc - optind != 4)
		return 2;
	if (!(ai = numeric_address(argv[optind], argv[optind + 1])))
		return 2;
	for (i = 0; i < clients; i++)
		if (fork() == 0) {
			int ack = open(argv[optind + 3], O_WRONLY | O_CREAT | O_APPEND, 0644), k, t, lost = 0;
			struct timespec pause = { 0, 20 * 1000 * 1000 };
			struct timespec between = { wait_ms / 1000, (wait_ms % 1000) * 1000000L };
			for (k = 0; k < per; k++) {
				for (t = 0; t < 200; t++) {
					char id[64], line[80];
					snprintf(id, sizeof id, "%d-%d-%d", i, k, t);
					if (attempt(ai, argv[optind + 2], id)) {
						int n = snprintf(line, sizeof line, "%s\n", id);
						if (write(ack, line, (size_t)n) != n)   /* one write: atomic with O_APPEND */
							_exit(1);
						break;
					}
					nanosleep(&pause, NULL);
				}
				lost += (t == 200);
				if (wait_ms > 0)
					nanosleep(&between, NULL);
			}
			_exit(lost ? 1 : 0);
		}
	int failed = 0;
	for (i = 0; i < clients; i++) {
		int st;
		wait(&st);
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	freeaddrinfo(ai);
	return failed ? 1 : 0;
}

/* ---- verify ---- */

struct seen { char id[64]; int acked, in_new; };
static struct seen *ids;
static int nids;

static struct seen *find(const char *id, int add)
{
	int i;
	for (i = 0; i < nids; i++)
		if (strcmp(ids[i].id, id) == 0)
			return &ids[i];
	if (!add || !(ids = realloc(ids, (size_t)(nids + 1) * sizeof *ids)))
		return NULL;
	memset(&ids[nids], 0, sizeof ids[nids]);
	snprintf(ids[nids].id, sizeof ids[nids].id, "%s", id);
	return &ids[nids++];
}

/* The id of a stored message, and whether the file holds it whole. */
static int read_message(const char *path, char id[64], int *whole)
{
	char buf[16384], want[8192], *subj;
	int fdr = open(path, O_RDONLY), n;
	ssize_t r;

	*whole = 0;
	id[0] = '\0';
	if (fdr < 0)
		return -1;
	r = read(fdr, buf, sizeof buf - 1);
	close(fdr);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	if (!(subj = strstr(buf, "Subject: stress ")) || sscanf(subj, "Subject: stress %63s", id) != 1)
		return 0;
	n = make_message(id, want, sizeof want);
	*whole = (size_t)(buf + r - subj) == (size_t)n && memcmp(subj, want, (size_t)n) == 0;
	return 0;
}

/* Every file of maildir/sub: counted in *files; in new/ (partial set)
 * a file must hold a whole message, whose id is counted as stored; in
 * tmp/ (partial NULL) the file must not be an acknowledged message. */
static void scan(const char *maildir, const char *sub, int *files, int *partial, int *tmp_of_acked)
{
	char path[4096], id[64];
	struct dirent *de;
	struct seen *s;
	int whole;
	DIR *d;

	snprintf(path, sizeof path, "%s/%s", maildir, sub);
	if (!(d = opendir(path)))
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s/%s", maildir, sub, de->d_name);
		(*files)++;
		if (read_message(path, id, &whole) < 0 || (partial && !whole)) {
			if (partial)
				(*partial)++;
			fprintf(stderr, "stress: partial or foreign file: %s\n", path);
		} else if (partial) {
			find(id, 1)->in_new++;
		} else if (id[0] && (s = find(id, 0)) && s->acked) {
			(*tmp_of_acked)++;
			fprintf(stderr, "stress: tmp/ holds acknowledged %s\n", id);
		}
	}
	closedir(d);
}

static int do_verify(int argc, char **argv)
{
	int dup_ok = 0, c, acked = 0, stored = 0, partial = 0, unacked_stored = 0, dups = 0;
	int missing = 0, too_many = 0, tmp_left = 0, tmp_of_acked = 0, i;
	char line[128];
	FILE *f;

	while ((c = getopt(argc, argv, "d")) != -1)
		dup_ok = (c == 'd');
	if (argc - optind != 2 || !(f = fopen(argv[optind + 1], "r")))
		return 2;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] && find(line, 1))
			find(line, 0)->acked = 1, acked++;
	}
	fclose(f);
	scan(argv[optind], "new", &stored, &partial, &tmp_of_acked);
	scan(argv[optind], "tmp", &tmp_left, NULL, &tmp_of_acked);
	for (i = 0; i < nids; i++) {
		if (ids[i].acked && ids[i].in_new == 0) {
			missing++;
			fprintf(stderr, "stress: acknowledged %s is not in new/\n", ids[i].id);
		}
		if (ids[i].in_new > 1) {
			dups += ids[i].in_new - 1;
			too_many += !dup_ok;
		}
		unacked_stored += !ids[i].acked && ids[i].in_new > 0;
	}
	printf("acked=%d stored=%d missing=%d partial=%d duplicates=%d unacked_stored=%d tmp_left=%d tmp_of_acked=%d\n",
	       acked, stored, missing, partial, dups, unacked_stored, tmp_left, tmp_of_acked);
	free(ids);
	return missing || partial || too_many || tmp_of_acked ? 1 : 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "send") == 0)
		return do_send(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return do_verify(argc - 1, argv + 1);
	fprintf(stderr, "usage: stress send [-c n] [-n n] [-w ms] host port rcpt ackfile | stress verify [-d] maildir ackfile\n");
	return 2;
}

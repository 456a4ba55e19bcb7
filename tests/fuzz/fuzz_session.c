/*
 * fuzz_session.c - libFuzzer: a whole smtpd session fed arbitrary client
 * bytes (commands, pipelining, DATA) through the real session() code.
 * The single-file program stays one file: it is included with its main
 * renamed.  A thread reads the replies so the server never blocks.
 */
#define main smtpd_main
#include "../../smtpd.c"
#undef main
#include <pthread.h>
#include <stdint.h>
#include "scratch.h"

static struct sockaddr_storage peer;

static void *drain(void *arg)
{
	char buf[65536];
	int fd = *(int *)arg;
	while (read(fd, buf, sizeof buf) > 0)
		;
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char *args[] = { "smtpd", "-m", NULL, "-q", NULL,
				"-n", "fuzz.test", "-t", "1", "-V", "-s", "100000", NULL };
	FILE *f;
	(void)argc, (void)argv;
	args[2] = strdup(scratch("mail"));
	args[4] = strdup(scratch("queue"));
	parse_options(12, args);
	make_path(scratch("mail/alice/new"));
	make_path(scratch("queue/tmp"));
	make_path(scratch("queue/entries"));
	if ((f = fopen(scratch("aliases"), "w"))) {
		fputs("staff: alice, bob@remote.test\nloop: loop, alice\n", f);
		fclose(f);
		load_aliases(scratch("aliases"));
	}
	((struct sockaddr_in *)&peer)->sin_family = AF_INET;
	((struct sockaddr_in *)&peer)->sin_addr.s_addr = htonl(0x7f000001);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	pthread_t reader;

	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	pthread_create(&reader, NULL, drain, &sv[1]);
	if (write(sv[1], data, size) == (ssize_t)size) {
		shutdown(sv[1], SHUT_WR);
		session(sv[0], &peer);          /* closes sv[0] */
	} else {
		close(sv[0]);
	}
	pthread_join(reader, NULL);
	close(sv[1]);
	return 0;
}

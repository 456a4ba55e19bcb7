/*
 * fuzz_queue_roundtrip.c - libFuzzer: a property of the queue entry, the
 * format smtpd writes and smtp_send reads (NOTES.md).  Every address that
 * smtpd accepts in MAIL FROM or RCPT TO must come back out of smtp_send's
 * parse_entry byte for byte.  The input is one path per line ("<...>"):
 * the first is the sender, the rest are recipients.  Lines that smtpd
 * would refuse are skipped.  A difference aborts.
 *
 * The writer is smtpd.c (included here with its main renamed); the reader
 * is smtp_send.c, in queue_reader.c: the two programs cannot share one
 * translation unit, so fuzz.sh links that file in too.
 *
 * fuzz.sh: also compile queue_reader.c
 */
#define main smtpd_main
#include "../../smtpd.c"
#undef main
#include <stdint.h>

#define MAX_RCPT 100

int queue_reader(char *text, size_t len, char *sender, size_t size, char *rcpt, size_t stride, int max);

static struct session *s;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char *args[] = { "smtpd", "-n", "fuzz.test", NULL };
	(void)argc, (void)argv;
	parse_options(3, args);
	s = calloc(1, sizeof *s);
	return 0;
}

/* smtpd's view of one line: a path it would accept, as it would store it. */
static int accepted(const char *line, size_t n, int sender, char *out)
{
	char path[CMD_LINE_MAX + 1];
	struct address a;
	const char *end;

	if (n >= sizeof path)
		return 0;
	memcpy(path, line, n);
	path[n] = '\0';
	if (!(end = parse_path(path, &a)) || *end)
		return 0;
	if (sender ? !a.null && !a.domain[0] : a.null || !a.domain[0])
		return 0;               /* cmd_mail's and a queued recipient's rules */
	address_text(&a, out, ADDR_SIZE);
	if (!sender && add_delivery(&s->dl, out, "", &a) < 0)
		return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char rcpt[MAX_RCPT + 1][ADDR_SIZE + 1];
	struct buffer head = { NULL, 0, 0 };
	const char *p = (const char *)data, *end = p + size;
	char sender[ADDR_SIZE + 1];
	int i, n, have_sender = 0;

	s->dl.n = 0;
	while (p < end && s->dl.n < MAX_RCPT) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!have_sender)
			have_sender = accepted(p, len, 1, s->sender);
		else
			accepted(p, len, 0, rcpt[0]);
		p += len + (nl != NULL);
	}
	if (!have_sender || s->dl.n == 0)
		return 0;
	if (queue_entry_head(s, "1795756195.M012734P2316Q1", &head) < 0 ||
	    buffer_add(&head, "Subject: x\n\nbody\n", 17) < 0)
		abort();
	n = queue_reader(head.data, head.len, sender, sizeof sender, rcpt[0], sizeof rcpt[0], MAX_RCPT);
	if (n != s->dl.n || strcmp(sender, s->sender) != 0) {
		fprintf(stderr, "round trip: sender <%s> came back as <%s>, %d of %d recipients\n",
			s->sender, sender, n, s->dl.n);
		abort();
	}
	for (i = 0; i < n; i++)
		if (strcmp(rcpt[i], s->dl.v[i].rcpt) != 0) {
			fprintf(stderr, "round trip: <%s> came back as <%s>\n", s->dl.v[i].rcpt, rcpt[i]);
			abort();
		}
	free(head.data);
	return 0;
}

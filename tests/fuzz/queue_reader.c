/*
 * queue_reader.c - smtp_send's side of fuzz_queue_roundtrip.c: its queue
 * entry parser, behind one plain function (smtp_send.c and smtpd.c cannot
 * be included in one file: they share names).
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main

int queue_reader(char *text, size_t len, char *sender, size_t size, char *rcpt, size_t stride, int max);

/* Parse an entry; the sender into sender[size], the recipients into
 * rcpt (one every stride bytes, at most max).  Returns how many
 * recipients, or -1 if parse_entry refuses the entry. */
int queue_reader(char *text, size_t len, char *sender, size_t size, char *rcpt, size_t stride, int max)
{
	static struct recipient rv[RCPT_MAX];
	struct entry e;
	struct job j;
	char why[200];
	int i;

	memset(&j, 0, sizeof j);
	j.rcpt = rv;
	if (parse_entry("1795000000.M1P1Q1", text, len, &e, &j, why, sizeof why) < 0)
		return -1;
	snprintf(sender, size, "%s", e.sender);
	for (i = 0; i < j.nrcpt && i < max; i++)
		snprintf(rcpt + (size_t)i * stride, stride, "%s", rv[i].addr);
	return j.nrcpt;
}

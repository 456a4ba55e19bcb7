/*
 * fuzz_queue_entry.c - libFuzzer: the queue entry reader of smtp_send
 * (the format smtpd writes, NOTES.md), then the message's wire form and
 * the header a bounce would return.
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct recipient rcpt[RCPT_MAX];
	struct entry e;
	struct job j;
	char *text;
	size_t body;

	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&j, 0, sizeof j);
	j.rcpt = rcpt;
	if (parse_entry(text, size, &e, &j) == 0) {
		make_wire(e.message, e.mlen, &j);
		header_length(e.message, e.mlen, &body);
	}
	free(j.wire.data);
	free(text);
	return 0;
}

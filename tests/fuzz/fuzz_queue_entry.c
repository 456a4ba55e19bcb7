/*
 * fuzz_queue_entry.c - libFuzzer: the queue entry reader of smtp_send
 * (the format smtpd writes, NOTES.md), then the message's wire form and
 * the header a bounce would return; the input as a file name too.  Two
 * promises are checked, not only the absence of crashes: on the wire
 * every line ends in CRLF, no CR or LF stands alone and no line passes
 * 1000 octets (make_wire); a folded bounce field has no line over 998
 * (add_folded).
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

/* Lines of at most `max` octets before their end; with crlf, every line
 * ends in CRLF and no CR or LF stands alone. */
static void check_lines(const char *p, size_t n, size_t max, int crlf)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (crlf && (p[i] == '\r') != (i + 1 < n && p[i + 1] == '\n'))
			abort();                /* a CR without LF */
		if (crlf && p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();                /* an LF without CR */
		if (p[i] == '\n') {
			if (i - start - (size_t)crlf > max)
				abort();
			start = i + 1;
		}
	}
	if (n > 0 && p[n - 1] != '\n')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct recipient rcpt[RCPT_MAX];
	struct buffer folded = { NULL, 0, 0 };
	struct entry e;
	struct job j;
	char *text, why[80];
	size_t body;

	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	safe_id(text);                          /* the input as a file name */
	add_folded(&folded, "Diagnostic-Code: smtp; ", text, "\t");
	check_lines(folded.data, folded.len, LINE_MAX_WIRE, 0);
	memset(&j, 0, sizeof j);
	j.rcpt = rcpt;
	if (parse_entry("1795000000.M1P1Q1", text, size, &e, &j, why, sizeof why) == 0) {
		make_wire(e.message, e.mlen, &j);
		check_lines(j.wire.data, j.wire.len, LINE_MAX_WIRE, 1);
		header_length(e.message, e.mlen, &body);
	}
	free(folded.data);
	free(j.wire.data);
	free(text);
	return 0;
}

/*
 * fuzz_ehlo.c - libFuzzer: what a server says first, as smtp_send reads
 * it: the greeting and the EHLO (or HELO) reply over a real socket
 * (smtp_hello: multi-line replies, the extension keywords, a server
 * naming itself as us), then the same bytes as one reply's text straight
 * into ehlo_extensions and names_us.
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c;
	struct extensions ext;
	char why[600], *text;
	int sv[2];

	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	opt.timeout_cap = 1;
	snprintf(opt.helo, sizeof opt.helo, "me.test");
	memset(&c, 0, sizeof c);
	c.fd = sv[0];
	snprintf(c.label, sizeof c.label, "fuzz");
	/* a socket buffer holds more than the largest input we feed */
	if (write(sv[1], data, size) == (ssize_t)size) {
		shutdown(sv[1], SHUT_WR);
		smtp_hello(&c, 1, &ext, why, sizeof why);
	}
	if (c.fd >= 0)
		close(c.fd);
	close(sv[1]);
	if ((text = malloc(size + 1))) {
		memcpy(text, data, size);
		text[size] = '\0';
		memset(&ext, 0, sizeof ext);
		ehlo_extensions(text, &ext);
		names_us(text);
		free(text);
	}
	return 0;
}

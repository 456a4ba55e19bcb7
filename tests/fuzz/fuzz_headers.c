/*
 * fuzz_headers.c - libFuzzer: smtp_send's message preparation with -t:
 * line ends, the header/body split, To:/Cc:/Bcc: recipients, Bcc:
 * removal, the added From:/Date:/Message-ID:, then the wire form.
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct recipient rcpt[RCPT_MAX];
	struct buffer m = { NULL, 0, 0 };
	struct job j;

	memset(&j, 0, sizeof j);
	j.rcpt = rcpt;
	j.sender = "fuzz@example.org";
	opt.from_headers = 1;
	snprintf(opt.helo, sizeof opt.helo, "fuzz.test");
	buffer_add(&m, data, size);
	if (prepare_message(&m, &j) == EX_OK)
		make_wire(m.data, m.len, &j);
	free(m.data);
	free(j.wire.data);
	return 0;
}

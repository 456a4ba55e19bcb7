/*
 * fuzz_send_address.c - libFuzzer: smtp_send's recipient addresses, as
 * given on the command line (add_recipient) and as a header's address
 * list (parse_address_list: display names, quotes, comments, groups).
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct recipient rcpt[RCPT_MAX];
	struct job j;
	char *text;

	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&j, 0, sizeof j);
	j.rcpt = rcpt;
	add_recipient(&j, text);
	parse_address_list(&j, text);
	free(text);
	return 0;
}

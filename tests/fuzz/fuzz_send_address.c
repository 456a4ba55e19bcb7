/*
 * fuzz_send_address.c - libFuzzer: smtp_send's recipient addresses, as
 * given on the command line (add_recipient, clean_address) and as a
 * header's address list (parse_address_list: display names, quotes,
 * comments, groups), and a sender as -f takes it.
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
	char *text, addr[ADDR_SIZE];

	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&j, 0, sizeof j);
	j.rcpt = rcpt;
	add_recipient(&j, text);
	parse_address_list(&j, text);
	clean_address(text, addr, sizeof addr, 0);     /* as -f takes it */
	free(text);
	return 0;
}

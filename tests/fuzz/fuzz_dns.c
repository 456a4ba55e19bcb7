/*
 * fuzz_dns.c - libFuzzer: smtp_send's DNS answer parser.  The first two
 * bytes are taken as the id we asked with, so answers get past the id
 * check; the question must still match, so it is tried for two names.
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_answer a;
	char name[NAME_MAX_DNS + 1];
	size_t off = 12;

	if (size < 2)
		return 0;
	dns_parse(data, size, get16(data), "example.org", T_MX, &a);
	dns_parse(data, size, get16(data), "a", T_A, &a);
	dns_read_name(data, size, &off, name);
	return 0;
}

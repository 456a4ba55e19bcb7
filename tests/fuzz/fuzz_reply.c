/*
 * fuzz_reply.c - libFuzzer: smtp_send's SMTP reply reader (read_reply
 * over a real socket), reply after reply until it fails, and the
 * enhanced status code taken from each.
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c;
	char reply[8192], dsn[16];
	int sv[2], code, n = 0;

	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	opt.timeout_cap = 1;
	memset(&c, 0, sizeof c);
	c.fd = sv[0];
	snprintf(c.label, sizeof c.label, "fuzz");
	/* a socket buffer holds more than the largest input we feed */
	if (write(sv[1], data, size) == (ssize_t)size) {
		shutdown(sv[1], SHUT_WR);
		while (n++ < 1000 && (code = read_reply(&c, 1, reply, sizeof reply)) > 0)
			status_code(reply, code, dsn, sizeof dsn);
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}

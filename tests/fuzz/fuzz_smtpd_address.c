/*
 * fuzz_smtpd_address.c - libFuzzer: smtpd's address parsing: parse_path,
 * the VRFY/EXPN query form, mailbox names, local domains, and recipient
 * resolution (aliases, relay decision) on whatever comes out.
 */
#define main smtpd_main
#include "../../smtpd.c"
#undef main
#include <stdint.h>
#include "scratch.h"

static struct session *s;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char *args[] = { "smtpd", "-m", NULL, "-n", "fuzz.test", "-d", "example.org", NULL };
	FILE *f;
	(void)argc, (void)argv;
	args[2] = strdup(scratch("mail"));
	parse_options(7, args);
	make_path(scratch("mail/alice"));
	if ((f = fopen(scratch("aliases"), "w"))) {
		fputs("staff: alice, \"x y\"@remote.test, @a:b@c\n", f);
		fclose(f);
		load_aliases(scratch("aliases"));
	}
	s = calloc(1, sizeof *s);
	s->relay_ok = 1;
	((struct sockaddr_in *)&s->local_sa)->sin_family = AF_INET;
	((struct sockaddr_in *)&s->local_sa)->sin_addr.s_addr = htonl(0x7f000001);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[CMD_LINE_MAX + 1], name[LOCAL_MAX + 1], out[ADDR_SIZE];
	const char *esc, *why;
	struct address a;
	int local;

	if (size > CMD_LINE_MAX)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	s->dl.n = 0;
	if (parse_path(text, &a)) {
		address_text(&a, out, sizeof out);
		mailbox_name(a.local, name);
		resolve_rcpt(s, &a, &s->dl, &esc, &why);
	}
	s->dl.n = 0;
	lookup_local(s, text, &s->dl, &local);
	return 0;
}

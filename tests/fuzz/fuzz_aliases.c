/*
 * fuzz_aliases.c - libFuzzer: smtpd's aliases file parser (/etc/aliases
 * syntax: comments, continuation lines), then every alias expanded.
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
	static char *args[] = { "smtpd", "-m", NULL, "-n", "fuzz.test", NULL };
	(void)argc, (void)argv;
	args[2] = strdup(scratch("mail"));
	parse_options(5, args);
	make_path(scratch("mail/alice"));
	s = calloc(1, sizeof *s);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(scratch("aliases"), "w");
	size_t i;

	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	free_aliases();
	if (load_aliases(scratch("aliases")) == 0)
		for (i = 0; i < cfg.naliases; i++) {
			struct expansion x;
			memset(&x, 0, sizeof x);
			s->dl.n = 0;
			expand_local(s, cfg.aliases[i].name, "x@localhost", &s->dl, &x);
		}
	return 0;
}

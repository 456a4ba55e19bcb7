/*
 * fuzz_idn_twins.c - libFuzzer: code written twice must agree (NOTES.md,
 * "Why some code is written twice").  smtpd's UTF-8 check and Punycode
 * against smtp_send's: the same verdict on every input as UTF-8; every
 * domain smtpd turns into A-labels, smtp_send turns into the same ones;
 * and the domain of every address smtpd accepts (parse_path) has them,
 * so smtp_send routes it where smtpd's is_local_domain would call it
 * ours.  A difference aborts.
 *
 * fuzz.sh: also compile idn_send.c
 */
#define main smtpd_main
#include "../../smtpd.c"
#undef main
#include <stdint.h>

int send_utf8_valid(const char *p, size_t n);
int send_domain_to_ascii(const char *domain, char *out, size_t size);

static void same_alabels(const char *domain)
{
	char ours[DOMAIN_MAX + 1], theirs[DOMAIN_MAX + 1];

	if (domain_to_ascii(domain, ours, sizeof ours) < 0)
		return;
	if (send_domain_to_ascii(domain, theirs, sizeof theirs) < 0 || strcmp(ours, theirs) != 0) {
		fprintf(stderr, "twins: %s is %s to smtpd, %s to smtp_send\n", domain, ours, theirs);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[PATH_LEN + 3];
	struct address a;

	if (utf8_valid((const char *)data, size) != send_utf8_valid((const char *)data, size))
		abort();
	if (size >= sizeof text || memchr(data, '\0', size))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	same_alabels(text);
	if (parse_path(text, &a) && a.domain[0] && !a.literal)
		same_alabels(a.domain);
	return 0;
}

/*
 * idn_send.c - smtp_send's side of fuzz_idn_twins.c: its UTF-8 check and
 * its domain_to_ascii behind plain functions (smtp_send.c and smtpd.c
 * cannot be included in one file: they share names).
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main

int send_utf8_valid(const char *p, size_t n);
int send_domain_to_ascii(const char *domain, char *out, size_t size);

int send_utf8_valid(const char *p, size_t n)
{
	return utf8_valid(p, n);
}

int send_domain_to_ascii(const char *domain, char *out, size_t size)
{
	return domain_to_ascii(domain, out, size);
}

/*
 * fuzz_intl.c - libFuzzer: smtp_send's code for text beyond ASCII, each
 * against a property, not only for crashes:
 *   utf8_valid        agrees with an independent validator (RFC 3629 4,
 *                     byte ranges, written here as the RFC tables them);
 *   domain_to_ascii   the output is ASCII, and each A-label decodes (the
 *                     RFC 3492 6.2 decoder below) to the label's code points;
 *   downgrade_header  an unstructured field and an address list come out
 *                     ASCII in lines under 78 columns; the Subject decodes
 *                     (RFC 2047, as a reader does) to the text it was;
 *   qp_line_add       lines of 76 at most that decode to the input line.
 * A broken property aborts.
 */
#define main smtp_send_main
#include "../../smtp_send.c"
#undef main
#include <stdint.h>

/* RFC 3629 4, the table of well-formed sequences, as ranges. */
static int reference_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];
		unsigned lo = 0x80, hi = 0xBF, k, len;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) len = 2;
		else if (c == 0xE0) len = 3, lo = 0xA0;
		else if (c >= 0xE1 && c <= 0xEC) len = 3;
		else if (c == 0xED) len = 3, hi = 0x9F;
		else if (c >= 0xEE && c <= 0xEF) len = 3;
		else if (c == 0xF0) len = 4, lo = 0x90;
		else if (c >= 0xF1 && c <= 0xF3) len = 4;
		else if (c == 0xF4) len = 4, hi = 0x8F;
		else return 0;
		if (i + len > n || p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (k = 2; k < len; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xBF)
				return 0;
		i += len;
	}
	return 1;
}

/* RFC 3492 6.2, the decoder, to check the encoder.  Returns the number of
 * code points, or -1. */
static int punycode_decode(const char *in, unsigned long *out, size_t max)
{
	unsigned long n = PUNY_INITIAL_N, i = 0, bias = PUNY_INITIAL_BIAS, w, k, t, digit, oldi;
	const char *dash = strrchr(in, '-'), *p;
	size_t len = 0, j;

	if (dash) {
		for (p = in; p < dash; p++) {
			if (len >= max || (unsigned char)*p >= 0x80)
				return -1;
			out[len++] = (unsigned char)*p;
		}
		p = dash + 1;
	} else {
		p = in;
	}
	while (*p) {
		for (oldi = i, w = 1, k = PUNY_BASE;; k += PUNY_BASE) {
			char c = *p++;
			digit = c >= 'a' && c <= 'z' ? (unsigned long)(c - 'a') : c >= 'A' && c <= 'Z' ? (unsigned long)(c - 'A')
			      : c >= '0' && c <= '9' ? (unsigned long)(c - '0' + 26) : PUNY_BASE;
			if (digit >= PUNY_BASE)
				return -1;
			i += digit * w;
			t = k <= bias ? PUNY_TMIN : k >= bias + PUNY_TMAX ? PUNY_TMAX : k - bias;
			if (digit < t)
				break;
			w *= PUNY_BASE - t;
			if (!*p)
				return -1;
		}
		bias = puny_adapt(i - oldi, len + 1, oldi == 0);
		n += i / (len + 1);
		i %= len + 1;
		if (len >= max)
			return -1;
		for (j = len; j > i; j--)
			out[j] = out[j - 1];
		out[i++] = n;
		len++;
	}
	return (int)len;
}

static void check_domain(const char *text)
{
	char ascii[NAME_MAX_DNS + 1];
	const char *d = text, *a;
	unsigned long want[DNS_LABEL_MAX], got[DNS_LABEL_MAX];
	size_t n, m, i, len;
	int ng;

	if (domain_to_ascii(text, ascii, sizeof ascii) < 0)
		return;
	if (has_8bit(ascii, strlen(ascii)))
		abort();
	for (a = ascii; *d; d += n + (d[n] == '.'), a += m + (a[m] == '.')) {
		n = strcspn(d, ".");
		m = strcspn(a, ".");
		if (!has_8bit(d, n)) {
			if (n != m || memcmp(d, a, n) != 0)
				abort();
			continue;
		}
		char label[DNS_LABEL_MAX + 1];
		if (m < 4 || m > DNS_LABEL_MAX || strncmp(a, "xn--", 4) != 0)
			abort();
		memcpy(label, a + 4, m - 4);
		label[m - 4] = '\0';
		for (i = 0, len = 0; i < n; i += utf8_decode((const unsigned char *)d + i, n - i, &want[len++]))
			;
		if ((ng = punycode_decode(label, got, DNS_LABEL_MAX)) != (int)len ||
		    memcmp(got, want, len * sizeof *got) != 0)
			abort();
	}
}

static int b64(char c)
{
	const char *s = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", *f = strchr(s, c);
	return c && f ? (int)(f - s) : -1;
}

/* RFC 2047 6.2, as a reader: encoded-words decoded, the blanks between two
 * adjacent ones dropped.  Then blank runs made one space, ends trimmed. */
static void decode_2047(const char *v, struct buffer *out)
{
	struct buffer raw = { NULL, 0, 0 };
	size_t i = 0, n = strlen(v), b, w, k;
	int prev = 0, enc, d, bits;
	unsigned long acc;

	while (i < n) {
		for (b = i; i < n && is_blank(v[i]); i++)
			;
		for (w = i; w < n && !is_blank(v[w]); w++)
			;
		enc = w - i >= 12 && strncmp(v + i, "=?UTF-8?B?", 10) == 0 && strncmp(v + w - 2, "?=", 2) == 0;
		if (!(enc && prev))
			buffer_add(&raw, v + b, i - b);
		if (!enc)
			buffer_add(&raw, v + i, w - i);
		for (k = i + 10, acc = 0, bits = 0; enc && k < w - 2; k++) {
			if ((d = b64(v[k])) < 0)
				continue;               /* '=' padding */
			acc = (acc << 6) | (unsigned long)d;
			if ((bits += 6) >= 8) {
				char c = (char)((acc >> (bits - 8)) & 0xFF);
				buffer_add(&raw, &c, 1);
				bits -= 8;
			}
		}
		prev = enc;
		i = w;
	}
	for (i = 0; i < raw.len; i++) {                 /* normalise the blanks */
		int blank = is_blank(raw.data[i]);
		if (blank && (out->len == 0 || out->data[out->len - 1] == ' '))
			continue;
		buffer_add(out, blank ? " " : raw.data + i, 1);
	}
	while (out->len > 0 && out->data[out->len - 1] == ' ')
		out->data[--out->len] = '\0';
	free(raw.data);
}

static void check_header(const char *text)
{
	struct buffer h = { NULL, 0, 0 }, out = { NULL, 0, 0 }, unfolded = { NULL, 0, 0 };
	struct buffer got = { NULL, 0, 0 }, want = { NULL, 0, 0 };
	char why[300];
	size_t i, start;

	buffer_add(&h, "Subject: ", 9);           /* (buffer_printf would cut it at 4 KiB) */
	buffer_add(&h, text, strlen(text));
	buffer_add(&h, "\nTo: ", 5);
	buffer_add(&h, text, strlen(text));
	buffer_add(&h, "\n", 1);
	if (downgrade_header(h.data, h.len, &out, why, sizeof why) == 0) {
		for (i = start = 0; i < out.len; i++) {
			if ((unsigned char)out.data[i] > 127)
				abort();
			if (out.data[i] != '\n')
				continue;
			out.data[i] = '\0';            /* a line with an encoded-word: under 78 */
			if (!strstr(text, "=?") && strstr(out.data + start, "=?UTF-8?B?") && i - start > HEADER_COLS)
				abort();
			out.data[i] = '\n';
			start = i + 1;
		}
		/* the Subject: unfolded and decoded is the text it was */
		for (i = 9; i < out.len && !(out.data[i] == '\n' && !is_blank(out.data[i + 1])); i++)
			if (out.data[i] != '\n')
				buffer_add(&unfolded, out.data + i, 1);
		decode_2047(unfolded.data ? unfolded.data : "", &got);
		decode_2047(text, &want);       /* the input has no encoded-words of ours... */
		if (!strstr(text, "=?") && (got.len != want.len || (got.len && memcmp(got.data, want.data, got.len))))
			abort();
	}
	free(h.data);
	free(out.data);
	free(unfolded.data);
	free(got.data);
	free(want.data);
}

static void check_qp(const char *text, size_t n)
{
	struct buffer out = { NULL, 0, 0 }, back = { NULL, 0, 0 };
	size_t i, col = 0;

	qp_line_add(&out, (const unsigned char *)text, n);
	for (i = 0; i < out.len; i++) {
		col = out.data[i] == '\n' ? 0 : col + 1;
		if (col > QP_LINE_MAX || (unsigned char)out.data[i] > 126)
			abort();
	}
	for (i = 0; i < out.len; i++) {                 /* RFC 2045 6.7, decoded */
		if (out.data[i] == '=' && i + 1 < out.len && out.data[i + 1] == '\n') {
			i++;
		} else if (out.data[i] == '=' && i + 2 < out.len) {
			char hex[3] = { out.data[i + 1], out.data[i + 2], 0 };
			char c = (char)strtol(hex, NULL, 16);
			buffer_add(&back, &c, 1);
			i += 2;
		} else {
			buffer_add(&back, out.data + i, 1);
		}
	}
	if (back.len != n || (n && memcmp(back.data, text, n) != 0))
		abort();
	free(out.data);
	free(back.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	size_t i;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (utf8_valid((const char *)data, size) != reference_utf8(data, size))
		abort();
	for (i = 0; i < size; i++)                      /* one line of text */
		if (text[i] == '\n' || text[i] == '\r' || text[i] == '\0')
			text[i] = ' ';
	check_domain(text);
	check_qp(text, size);
	if (utf8_valid(text, size))
		check_header(text);
	free(text);
	return 0;
}

/*
 * smtpd.c - a small, readable SMTP server (the receiving half of an MTA)
 *
 * SYNOPSIS
 *   smtpd [-a addr] [-p port] [-m maildir-root] [-d domain]... [-n hostname] [-A]
 *         [-q queue-dir] [-r cidr]... [-s max-bytes] [-c max-sessions]
 *         [-C max-per-client] [-t seconds] [-x aliases-file] [-E keyword]...
 *         [-V] [-v]
 *   smtpd -h
 *
 * DESCRIPTION
 *   Listens on one TCP address, forks one child per connection and speaks
 *   SMTP with it.  Mail for a local domain is delivered into the Maildir
 *   ROOT/<user>/; mail for any other domain is written to the queue, which
 *   smtp_send -q delivers.  Blocking I/O throughout: one process, one client.
 *   With SMTPUTF8 addresses may be UTF-8: 张三@例子.测试 is the Maildir
 *   ROOT/张三/ when 例子.测试 (or xn--fsqu00a.xn--0zwm56d) is a -d domain.
 *
 * OPTIONS (defaults in brackets)
 *   -a addr      listen address, IPv4 or IPv6 [127.0.0.1]
 *   -p port      listen port; 0 picks a free one (logged) [2525]
 *   -m dir       mail root; user U's mailbox is the Maildir dir/U/ [./mail]
 *   -d domain    a local domain, repeatable [localhost and the -n name]
 *   -n name      our name in the greeting, Received: and file names [gethostname()]
 *   -A           create a user's Maildir on first delivery [only existing ones]
 *   -q dir       queue for non-local recipients [./queue]
 *   -r cidr      clients allowed to relay, repeatable [127.0.0.0/8 and ::1]
 *   -s bytes     largest message accepted, advertised in SIZE [10485760]
 *   -c n         concurrent sessions; one more gets 421 4.3.2 [20]
 *   -C n         concurrent sessions from one client address; one more
 *                gets 421 4.7.0 [no limit but -c]
 *   -t seconds   time allowed for each line, command or message line; so
 *                also the idle timeout [300, RFC 5321 4.5.3.2.7]
 *   -x file      aliases file in /etc/aliases syntax, read again on
 *                SIGHUP [none]
 *   -E keyword   withhold this EHLO extension and refuse its use as if it
 *                were unknown, repeatable: PIPELINING, SIZE, 8BITMIME,
 *                SMTPUTF8, ENHANCEDSTATUSCODES, HELP [all offered];
 *                -E SMTPUTF8 -E 8BITMIME plays an old server
 *   -V           answer VRFY and EXPN truthfully [252: cannot verify]
 *   -v           log the whole dialogue (C: and S: lines) to stderr
 *   -h           print the options and exit
 *
 * STANDARDS
 *   RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 2920
 *   (PIPELINING), RFC 2034 and RFC 3463 (enhanced status codes), RFC 5322
 *   (header and date syntax), RFC 6531 (SMTPUTF8: UTF-8 addresses), RFC
 *   3629 (UTF-8), RFC 3492 and RFC 5890 (Punycode, A-labels), the Maildir
 *   format (maildir(5) of qmail).
 *
 * SIGNALS
 *   SIGTERM, SIGINT  stop: no new sessions; each session waiting for a
 *                    command answers 421 4.3.2 and closes, one inside a
 *                    transaction finishes it first; exit when all are gone.
 *   SIGHUP           read the -x aliases file again (new sessions use it;
 *                    a file that cannot be read keeps the old table).
 *
 * HOW TO READ THIS FILE
 *   1. main(): options, start-up, the accept loop, one fork() per client
 *      (accept_client), the parent's table of sessions (struct children).
 *   2. session(): the greeting and the command loop.
 *   3. commands[]: the command table; then one cmd_* function per verb.
 *   4. read_data(): the DATA byte machine (end of data, dot-unstuffing);
 *      keep_byte() keeps the message in memory, or spills a big one to a
 *      file (message_spill) so a session does not grow with the message.
 *   5. deliver(): Maildir files and queue entries (tmp, fsync, rename).
 *   Helpers come before their users: UTF-8 (utf8_decode), I/O and
 *   replies, Punycode (punycode_encode, step by step), address parsing,
 *   recipient resolution (aliases, mailboxes).
 *
 * DIAGNOSTICS
 *   One line per event on stderr, "smtpd: sid=<session> <event> key=value";
 *   with -v also every line sent (S:) and received (C:).  Bytes outside
 *   0x20-0x7E are logged escaped (\r, \t, \x1b; in C: lines also \\),
 *   but for UTF-8 characters from U+00A0 on, which show as they are.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- Limits, each with where it comes from ------------------------------ */

#define CMD_LINE_MAX   512  /* RFC 5321 4.5.3.1.4: command line, CRLF included */
#define REPLY_LINE_MAX 512  /* RFC 5321 4.5.3.1.5: reply line, CRLF included */
#define RECEIVED_LINE_MAX 77 /* RFC 5322 2.1.1: header lines SHOULD be under 78 */
#define ECHO_MAX        64  /* a client's words quoted in a reply, at most */
#define LABEL_MAX       63  /* RFC 1035 2.3.4: one label of a domain */
#define SIZE_DIGITS     20  /* RFC 1870 3: size-value = 1*20DIGIT */
#define LOCAL_MAX       64  /* RFC 5321 4.5.3.1.1: local part */
#define DOMAIN_MAX     255  /* RFC 5321 4.5.3.1.2: domain */
#define PATH_LEN       256  /* RFC 5321 4.5.3.1.3: path, brackets included */
#define ADDR_SIZE (LOCAL_MAX + 1 + DOMAIN_MAX + 1)  /* room for local@domain */
#define RCPT_MAX       100  /* RFC 5321 4.5.3.1.8: at least 100 must be taken */
#define RCPT_OVERSHOOT 1000 /* RCPTs answered 452 in a transaction before each
                               more counts as an error (Postfix's
                               smtpd_recipient_overshoot_limit, default 1000;
                               smtp_send pipelines up to 1000 at once) */
#define HOPS_MAX       100  /* RFC 5321 6.3: more Received: lines means a loop */
#define ERRORS_MAX      20  /* errors in a session, then 421 (Postfix's
                               smtpd_hard_error_limit, default 20) */
#define JUNK_MAX       100  /* NOOP, RSET, VRFY, EXPN, HELP in a session (Postfix's
                               smtpd_junk_command_limit, default 100) */
#define DELIVERY_MAX  1000  /* copies of one message after alias expansion */
#define MSG_MEM_MAX  65536  /* a message up to this size stays in memory; a
                               larger one is spilled to a file (a session
                               must not grow with the message) */
#define ALIAS_DEPTH     10  /* nesting of aliases */
#define DOMAINS_MAX     32
#define RELAY_MAX       32
#define IN_BUF_SIZE  65536  /* read() size: never one read() per byte */
#define OUT_BUF_SIZE  8192  /* replies of a pipelined group go out together */

/* ---- Configuration: set once by main(), read-only in the sessions -------- */

struct cidr { int family; unsigned char addr[16]; int bits; };
struct alias { char *name; char *members; };

/*
 * The extensions of the EHLO reply, in its order.  -E KEYWORD withholds
 * one: it is not offered, and its use is refused as if it did not exist
 * (a parameter of it gets 555, HELP gets 500, replies lose their x.y.z
 * codes, PIPELINING: offers() explains), so one smtpd can play an old
 * server.
 */
enum { EXT_PIPELINING, EXT_SIZE, EXT_8BITMIME, EXT_SMTPUTF8, EXT_ENHANCEDSTATUSCODES, EXT_HELP, NEXT };
static const char *const ext_names[NEXT] = {
	"PIPELINING",           /* RFC 2920 */
	"SIZE",                 /* RFC 1870 */
	"8BITMIME",             /* RFC 6152 */
	"SMTPUTF8",             /* RFC 6531 */
	"ENHANCEDSTATUSCODES",  /* RFC 2034 */
	"HELP",                 /* RFC 5321 4.1.1.8 */
};

static struct config {
	const char *listen_addr, *port, *mailroot, *queuedir, *aliases_file;
	const char *domains[DOMAINS_MAX];
	char domains_ascii[DOMAINS_MAX][DOMAIN_MAX + 1];   /* the same, in A-labels */
	int ndomains;
	unsigned withheld;          /* -E: 1 << EXT_... */
	char hostname[256];
	char file_host[512];     /* hostname made safe for Maildir file names */
	int autocreate, vrfy, verbose;
	struct cidr relay[RELAY_MAX];
	int nrelay;
	unsigned long maxsize;
	int maxsessions, maxperclient, timeout;
	struct alias *aliases;
	size_t naliases;
} cfg;

/* ---- Session state: everything one connection knows, in one struct ----- */

/* RFC 5321 4.1.4: the order of commands.  A transaction is MAIL, RCPT..., DATA. */
enum state {
	ST_START,   /* connected, no HELO/EHLO yet */
	ST_READY,   /* greeted; no transaction */
	ST_MAIL,    /* MAIL accepted, no recipient yet */
	ST_RCPT     /* at least one RCPT accepted: DATA may follow */
};
static const char *const state_names[] = { "START", "READY", "MAIL", "RCPT" };   /* logs */
#define IN(st) (1u << (st))
#define ANY_STATE (IN(ST_START) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT))
#define JUNK (1u << 8)      /* in commands[]: moves no mail, counted (JUNK_MAX) */

struct address {                    /* one parsed RFC 5321 path */
	int null;                   /* the null path <> */
	int quoted;                 /* local part was a quoted-string */
	int literal;                /* domain is an address literal [...] */
	int utf8;                   /* holds UTF-8: needs SMTPUTF8 (RFC 6531) */
	char local[LOCAL_MAX + 1];  /* local part, quotes and escapes removed */
	char raw[LOCAL_MAX + 1];    /* local part as written */
	char domain[DOMAIN_MAX + 1];/* empty for RCPT TO:<postmaster> */
};

struct delivery {                   /* one copy of the message */
	char rcpt[ADDR_SIZE];       /* Delivered-To (local) or queue recipient */
	char user[LOCAL_MAX + 1];   /* mailbox directory; "" means queue it */
	char key[ADDR_SIZE];        /* a remote one: how add_delivery compares it */
};

struct dlist { struct delivery *v; int n, cap; };   /* grows, up to DELIVERY_MAX */

struct buffer { char *data; size_t len, cap; };

struct mbox_index { char **names; size_t n; int built; };   /* mailbox_exists */

struct message {                    /* the message of a transaction (DATA) */
	char *mem;                  /* MSG_MEM_MAX bytes: the message, or the
	                               part of it not yet in the spill file */
	size_t len;                 /* bytes in mem */
	int spill;                  /* the spill file, or -1: all is in mem */
	off_t spilled;              /* bytes in the spill file */
	unsigned long size;         /* its size on the wire (CRLF counted as 2) */
	int bare, nul, too_big;     /* refused at its end for this reason... */
	int error;                  /* ...or for this errno (memory, disk) */
	int hops;                   /* Received: lines in its header */
	int folded_start;           /* its first byte is SP or TAB (build_received) */
	int in_header, line_len;    /* for counting them as the bytes pass */
	char line_head[9];
	char wire[CMD_LINE_MAX];    /* -v: the line arriving, as sent */
	size_t wire_len;
	int wire_cr;                /* its last byte was a CR, not yet logged */
};

struct session {
	int fd;
	char id[32];
	char peer[INET6_ADDRSTRLEN];
	int peer_v6;
	struct sockaddr_storage local_sa;
	int relay_ok;               /* client may send to non-local domains */
	enum state state;
	int esmtp;                  /* EHLO rather than HELO */
	int smtputf8;               /* MAIL had SMTPUTF8: UTF-8 addresses (RFC 6531) */
	char helo[256];
	int errors;                 /* errors so far (reply_error) */
	int junk;                   /* NOOP, RSET, VRFY, EXPN, HELP so far */
	int bare_lf_noted;          /* -v said once that lines end in bare LF */
	int quit;                   /* close after this reply */
	int dead;                   /* write failed: client gone */
	long long deadline;         /* the line being read must be in by then
	                               (milliseconds on CLOCK_MONOTONIC) */
	/* the transaction (RFC 5321 3.3) */
	char sender[ADDR_SIZE];     /* without brackets; "" is the null sender */
	int nrcpt;                  /* RCPT commands accepted */
	int overshoot;              /* RCPT commands answered 452 */
	char first_rcpt[ADDR_SIZE];
	struct dlist dl;            /* where the message goes */
	struct message msg;         /* the message, LF line ends */
	struct mbox_index mbx;      /* mixed-case mailbox names, made on need */
	/* buffered I/O; the two buffers last: session() zeroes only what
	   comes before them (73 KiB a connection need not touch) */
	size_t in_start, in_end;
	size_t out_len;
	char in[IN_BUF_SIZE];
	char out[OUT_BUF_SIZE];
};

static unsigned long deliveries_made;   /* Q<n> in Maildir names */

/* ---- UTF-8 (RFC 3629): addresses in other scripts (RFC 6531) ------------- */

/*
 * RFC 3629 3 and 4: one UTF-8 sequence at p (n bytes left) into *cp.
 * Returns its length, or 0 when the bytes are not UTF-8.  The first byte
 * says how many follow (110xxxxx one, 1110xxxx two, 11110xxx three);
 * each that follows is 10xxxxxx.  Refused: a 10xxxxxx byte where a
 * character should start, a sequence cut short, an overlong form (C0 AF
 * is '/' written in two bytes, the classic way past a check for "/" that
 * looks at characters; the shortest form is the only form), a surrogate
 * (U+D800-DFFF, which belongs to UTF-16) and anything above U+10FFFF.
 */
static size_t utf8_decode(const unsigned char *p, size_t n, unsigned long *cp)
{
	static const unsigned long least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len, i;
	unsigned long c;

	if (n == 0)
		return 0;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xC2 && p[0] <= 0xDF)       /* C0 and C1 can only start overlong forms */
		len = 2, c = p[0] & 0x1Fu;
	else if ((p[0] & 0xF0) == 0xE0)
		len = 3, c = p[0] & 0x0Fu;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)  /* F5-FF would pass U+10FFFF */
		len = 4, c = p[0] & 0x07u;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3Fu);
	}
	if (c < least[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

/* Characters no address may hold, though they are UTF-8: the C1 controls
 * (RFC 5198 2: MUST NOT appear in text; NEL, U+0085, is a line end to
 * some readers), the line and paragraph separators U+2028 and U+2029
 * (line ends to others, Python's str.splitlines() among them), and the
 * bidirectional overrides and isolates U+202A-202E, U+2066-2069, which
 * make a name show in another order than it is (in ls, in a log): an
 * address becomes a header line and, with -A, a directory name. */
static int unsafe_character(unsigned long cp)
{
	return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Is p[0..n) UTF-8 from start to end, and, for an address, free of
 * unsafe_character()s? */
static int utf8_scan(const char *p, size_t n, int address)
{
	size_t i = 0, len;
	unsigned long cp;

	for (; i < n; i += len)
		if (!(len = utf8_decode((const unsigned char *)p + i, n - i, &cp)) ||
		    (address && unsafe_character(cp)))
			return 0;
	return 1;
}

static int utf8_valid(const char *p, size_t n) { return utf8_scan(p, n, 0); }

static int has_8bit(const char *p, size_t n)
{
	while (n-- > 0)
		if ((unsigned char)*p++ > 127)
			return 1;
	return 0;
}

/* ---- Logging -------------------------------------------------------------- */

/*
 * Peer bytes never reach a log or a reply raw: a byte outside 0x20-0x7E
 * is written as \r, \n, \t or \xHH, so a CR hidden in a HELO name or a
 * bare LF in a message shows in the transcript instead of acting on the
 * terminal (or on a log parser).  With backslash set, '\' itself becomes
 * "\\", so the escaped text is unambiguous (for C: lines).  With utf8 set,
 * a UTF-8 character (张三) stays as it is, unless it is a C1 control
 * (U+0080-009F: some terminals obey those too).  Writes at most size-1
 * bytes and a NUL, never half an escape; returns the length.
 */
static size_t escape_bytes(char *out, size_t size, const char *p, size_t n, int backslash, int utf8)
{
	size_t o = 0, i, len;
	unsigned long cp;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char e[5];
		if (c >= 0x20 && c <= 0x7e && c != '\\' && o + 1 < size) {    /* the common case */
			out[o++] = (char)c;
			continue;
		}
		if (c > 0x7e && utf8 && (len = utf8_decode((const unsigned char *)p + i, n - i, &cp)) && cp >= 0xA0) {
			if (o + len >= size)
				break;
			memcpy(out + o, p + i, len);
			o += len;
			i += len - 1;
			continue;
		}
		if (c == '\\' && backslash)
			snprintf(e, sizeof e, "\\\\");
		else if (c >= 0x20 && c <= 0x7e)
			snprintf(e, sizeof e, "%c", c);
		else if (c == '\r' || c == '\n' || c == '\t')
			snprintf(e, sizeof e, "\\%c", c == '\r' ? 'r' : c == '\n' ? 'n' : 't');
		else
			snprintf(e, sizeof e, "\\x%02x", c);
		if (o + strlen(e) >= size)
			break;
		memcpy(out + o, e, strlen(e));
		o += strlen(e);
	}
	if (size > 0)
		out[o] = '\0';
	return o;
}

#define LOG_LINE_MAX (4 * CMD_LINE_MAX + 100)   /* an escaped command line fits */

static void log_event(const struct session *s, const char *fmt, ...)
{
	char line[LOG_LINE_MAX], safe[LOG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	escape_bytes(safe, sizeof safe, line, (size_t)n, 0, 1);
	if (s)
		fprintf(stderr, "smtpd: sid=%s %s\n", s->id, safe);
	else
		fprintf(stderr, "smtpd: %s\n", safe);
}

/* With -v: one line from the client, as it came (escaped, NULs included). */
static void log_client(const struct session *s, const char *p, size_t n)
{
	char safe[4 * CMD_LINE_MAX + 1];

	escape_bytes(safe, sizeof safe, p, n, 1, 1);
	log_event(s, "C: %s", safe);
}

/* ---- A growable buffer: the message, queue entries, long replies ------- */

static int buffer_add(struct buffer *b, const char *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		char *d;
		while (cap < b->len + n)
			cap *= 2;
		if (!(d = realloc(b->data, cap)))
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int buffer_printf(struct buffer *b, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof text)
		return -1;
	return buffer_add(b, text, (size_t)n);
}

/* ---- Output: replies are buffered and flushed before we block on input --- */

static void write_all(struct session *s, const char *p, size_t n)
{
	while (n > 0 && !s->dead) {
		ssize_t w = write(s->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_event(s, "write-error error=\"%s\"", strerror(errno));
			s->dead = 1;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void flush_out(struct session *s)
{
	write_all(s, s->out, s->out_len);
	s->out_len = 0;
}

static void put_out(struct session *s, const char *p, size_t n)
{
	if (s->out_len + n > sizeof s->out)
		flush_out(s);
	if (n > sizeof s->out) {
		write_all(s, p, n);
		return;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static int offers(int ext);

/*
 * The one reply function (RFC 5321 4.2).  The text may hold several lines
 * separated by '\n'; all but the last go out as "code-", the last as
 * "code " (4.2.1).  esc is the enhanced status code (RFC 3463) or NULL.
 * Whatever the text holds (a client's words too), a line goes out with
 * bytes 0x20-0x7E only, and at most REPLY_LINE_MAX octets with its CRLF;
 * in a transaction opened with SMTPUTF8, UTF-8 too (RFC 6531 3.7.4).
 */
static void vreply(struct session *s, int code, const char *esc,
		   const char *fmt, va_list ap)
{
	char text[4096], safe[REPLY_LINE_MAX], line[REPLY_LINE_MAX + 1];
	char *p = text, *nl, *big = NULL;
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(text, sizeof text, fmt, ap);
	if (n >= (int)sizeof text && (big = malloc((size_t)n + 1))) {   /* a long EXPN */
		vsnprintf(big, (size_t)n + 1, fmt, again);
		p = big;
	}
	va_end(again);
	if (!offers(EXT_ENHANCEDSTATUSCODES))
		esc = NULL;
	for (;;) {
		nl = strchr(p, '\n');
		escape_bytes(safe, sizeof safe, p, nl ? (size_t)(nl - p) : strlen(p), 0, s->smtputf8);
		n = snprintf(line, REPLY_LINE_MAX - 1, "%d%c%s%s%s", code,
			     nl ? '-' : ' ', esc ? esc : "", esc ? " " : "", safe);
		if (n < 0 || n > REPLY_LINE_MAX - 2)    /* cut: CRLF must fit */
			n = REPLY_LINE_MAX - 2;
		if (cfg.verbose)
			log_event(s, "S: %s", line);
		memcpy(line + n, "\r\n", 2);
		put_out(s, line, (size_t)n + 2);
		if (!nl)
			break;
		p = nl + 1;
	}
	if (!offers(EXT_PIPELINING))
		flush_out(s);
	free(big);
}

static void reply(struct session *s, int code, const char *esc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, code, esc, fmt, ap);
	va_end(ap);
}

/*
 * A reply to an error: a bad command, a command out of order, or a
 * refused recipient.  All count toward one limit; the reply that reaches
 * it is followed by 421 and the end of the session (Postfix's hard error
 * limit).  A client that errs that much is not a mailer: it is guessing
 * addresses (harvesting without VRFY) or lost.
 */
static void reply_error(struct session *s, int code, const char *esc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, code, esc, fmt, ap);
	va_end(ap);
	if (++s->errors >= ERRORS_MAX && !s->quit) {
		reply(s, 421, "4.7.0", "%s Too many errors, closing connection", cfg.hostname);
		log_event(s, "too-many-errors count=%d", s->errors);
		s->quit = 1;
	}
}

/*
 * One more command that moves no mail (JUNK in commands[], and a DATA
 * that has no recipient to send to).  The one past JUNK_MAX gets 421
 * instead of its answer, and the session ends: returns 1.  A client
 * that only NOOPs (or only sends DATA after MAIL) holds a session slot,
 * and a stopping server, for nothing.
 */
static int junk_over(struct session *s)
{
	if (++s->junk <= JUNK_MAX)
		return 0;
	reply(s, 421, "4.7.0", "%s Too many junk commands, closing connection", cfg.hostname);
	log_event(s, "too-many-junk-commands count=%d", s->junk - 1);
	s->quit = 1;
	return 1;
}

/* ---- Input: a buffered reader with a read timeout ------------------------- */

/* What the readers return instead of a length (a length may be 0: an
 * empty command line is a line, not the end of the connection). */
enum { IN_EOF = -1, IN_ERROR = -2, IN_TIMEOUT = -3, IN_TOO_LONG = -4, IN_STOP = -5 };

/*
 * Signals only write a byte into a pipe (the "self-pipe trick") and set a
 * flag; whoever waits poll()s the pipe with its socket.  Checking a flag
 * and then blocking would leave a window where a SIGTERM arrives just
 * before the wait, and is never seen.  The accept loop and each session
 * (which makes a pipe of its own) use this alike.
 */
static volatile sig_atomic_t stopping, reloading;
static int wake_pipe[2] = { -1, -1 };

/* Milliseconds on CLOCK_MONOTONIC, which a change of the date does not
 * move: a clock set forward must not fire a timeout, nor one set back
 * stretch it. */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -t: the next line (a command, or one line of the message) must be in
 * within cfg.timeout seconds from now. */
static void set_deadline(struct session *s)
{
	s->deadline = now_ms() + (long long)cfg.timeout * 1000;
}

/*
 * Get more bytes into s->in.  Replies waiting in s->out are flushed first:
 * the client may be waiting for them (RFC 2920 3.2), so never block on
 * read with replies unsent.  The wait ends at s->deadline: the timeout
 * bounds a whole line, not each read, so a client that trickles a byte
 * every few seconds cannot keep its session (and a session slot) forever
 * (Postfix calls this a per-record deadline).  The wait also ends when
 * the server is stopping (SIGTERM, seen through wake_pipe) and we wait
 * for a command outside a transaction: IN_STOP.  Inside a transaction
 * (after MAIL, in DATA) the client is let finish.  Returns bytes read or
 * an IN_ code.
 */
static int fill(struct session *s, int for_command)
{
	struct pollfd pfd[2];
	char drain[64];
	ssize_t n;
	long long left;
	int r;

	flush_out(s);
	if (s->dead)
		return IN_ERROR;
	if (s->in_start == s->in_end)
		s->in_start = s->in_end = 0;
	if (s->in_end == sizeof s->in) {   /* make room: move the rest to the front */
		memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
		s->in_end -= s->in_start;
		s->in_start = 0;
	}
	pfd[0].fd = s->fd;
	pfd[1].fd = wake_pipe[0];               /* -1 (ignored) outside a forked session */
	pfd[0].events = pfd[1].events = POLLIN;
	for (;;) {
		if (for_command && stopping && s->state <= ST_READY)
			return IN_STOP;
		left = s->deadline - now_ms();
		r = left > 0 ? poll(pfd, 2, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return IN_TIMEOUT;
		if (r < 0)
			return IN_ERROR;
		if (pfd[1].revents & POLLIN)
			while (read(wake_pipe[0], drain, sizeof drain) > 0)
				;
		if (pfd[0].revents)
			break;
	}
	do
		n = read(s->fd, s->in + s->in_end, sizeof s->in - s->in_end);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		log_event(s, "read-error error=\"%s\"", strerror(errno));
		return IN_ERROR;
	}
	if (n == 0)
		return IN_EOF;
	s->in_end += (size_t)n;
	return (int)n;
}

/* Read one command line into line[] (NUL-terminated, CRLF or LF removed).
 * Returns its length or an IN_ code.  A line longer than CMD_LINE_MAX is
 * read to its end and thrown away: IN_TOO_LONG. */
static int read_line(struct session *s, char *line)
{
	int too_long = 0;

	set_deadline(s);
	for (;;) {
		size_t avail = s->in_end - s->in_start;
		char *start = s->in + s->in_start;
		char *nl = memchr(start, '\n', avail);
		if (nl) {
			size_t n = (size_t)(nl - start) + 1;   /* with the LF */
			s->in_start += n;
			if (too_long || n > CMD_LINE_MAX)
				return IN_TOO_LONG;
			n--;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			else if (cfg.verbose && !s->bare_lf_noted) {   /* a student's nc without -C */
				log_event(s, "client sends bare LF line ends; use nc -C");
				s->bare_lf_noted = 1;
			}
			memcpy(line, start, n);
			line[n] = '\0';
			return (int)n;
		}
		if (avail > CMD_LINE_MAX) {     /* drain what we have, remember */
			too_long = 1;
			s->in_start = s->in_end;
		}
		int r = fill(s, 1);
		if (r < 0)
			return r;
	}
}

/* ---- Punycode: the ASCII form of a domain in another script -------------- */

/* RFC 3492 5: the parameters that turn Bootstring into Punycode. */
#define PUNY_BASE          36   /* digits: a-z are 0-25, 0-9 are 26-35 */
#define PUNY_TMIN           1
#define PUNY_TMAX          26
#define PUNY_SKEW          38
#define PUNY_DAMP         700
#define PUNY_INITIAL_BIAS  72
#define PUNY_INITIAL_N    128   /* the first code point that is not ASCII */
#define PUNY_MAXINT 0xFFFFFFFFUL /* RFC 3492 6.4: 32-bit arithmetic */

static char puny_digit(unsigned long d)
{
	return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* RFC 3492 6.1: the bias after a delta.  It makes the next delta take
 * about as many digits as the deltas so far took: a script whose
 * characters lie close together (Chinese: 例 and 子 are 4F8B and 5B50)
 * gets short numbers. */
static unsigned long puny_adapt(unsigned long delta, unsigned long npoints, int first)
{
	unsigned long k = 0;

	delta = first ? delta / PUNY_DAMP : delta / 2;  /* the first is damped hard */
	delta += delta / npoints;                       /* more points, smaller steps */
	while (delta > ((PUNY_BASE - PUNY_TMIN) * PUNY_TMAX) / 2) {
		delta /= PUNY_BASE - PUNY_TMIN;
		k += PUNY_BASE;
	}
	return k + (PUNY_BASE - PUNY_TMIN + 1) * delta / (delta + PUNY_SKEW);
}

/*
 * RFC 3492 6.3, the encoder, step by step; NOTES.md works 例子 by hand.
 * In: the code points cp[0..n) of one label.  Out: its Punycode in
 * out[size], without "xn--".  Returns 0, or -1 when it does not fit.
 *
 * A decoder will start from the ASCII characters and insert the others
 * one at a time.  Its state is (code, i): the code point it inserts next
 * and the position it inserts it at.  One number, delta, tells it how far
 * to move that state: every position of the string so far, for every
 * code point value it skips.  We write each delta as the decoder will
 * read it.
 */
static int punycode_encode(const unsigned long *cp, size_t n, char *out, size_t size)
{
	unsigned long code = PUNY_INITIAL_N, delta = 0, bias = PUNY_INITIAL_BIAS, next, q, k, t;
	size_t h, basic, o = 0, i;

	/* 1. The ASCII code points go first, as they are, then a '-' if there
	 *    were any ("bücher" starts "bcher-"; 例子 has none). */
	for (i = 0; i < n; i++)
		if (cp[i] < 0x80) {
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)cp[i];
		}
	h = basic = o;                  /* h: code points placed so far */
	if (basic > 0) {
		if (o + 1 >= size)
			return -1;
		out[o++] = '-';
	}
	while (h < n) {
		/* 2. The smallest code point not yet placed: 例 (U+4F8B) before
		 *    子 (U+5B50), whatever their order in the label. */
		for (next = PUNY_MAXINT, i = 0; i < n; i++)
			if (cp[i] >= code && cp[i] < next)
				next = cp[i];
		/* 3. Moving from code to next passes h + 1 positions per value. */
		if (next - code > (PUNY_MAXINT - delta) / (h + 1))
			return -1;
		delta += (next - code) * (h + 1);
		code = next;
		/* 4. Walk the label: each character already placed before the
		 *    insertion point is one more step; at each `code`, emit. */
		for (i = 0; i < n; i++) {
			if (cp[i] < code && ++delta > PUNY_MAXINT)
				return -1;
			if (cp[i] != code)
				continue;
			/* 5. delta in base 36, least significant digit first.  Each
			 *    digit has a threshold t (from the bias): a digit below
			 *    its t is the last one, so no separator is needed. */
			for (q = delta, k = PUNY_BASE;; k += PUNY_BASE) {
				t = k <= bias ? PUNY_TMIN : k >= bias + PUNY_TMAX ? PUNY_TMAX : k - bias;
				if (q < t)
					break;
				if (o + 1 >= size)
					return -1;
				out[o++] = puny_digit(t + (q - t) % (PUNY_BASE - t));
				q = (q - t) / (PUNY_BASE - t);
			}
			if (o + 1 >= size)
				return -1;
			out[o++] = puny_digit(q);
			/* 6. Adapt the bias to this delta; start counting again. */
			bias = puny_adapt(delta, (unsigned long)h + 1, h == basic);
			delta = 0;
			h++;
		}
		delta++;                /* past this value: on to the next */
		code++;
	}
	out[o] = '\0';
	return 0;
}

/*
 * A domain in the form DNS knows (RFC 5890 2.3.2.1): each label with a
 * character beyond ASCII becomes its A-label, "xn--" and its Punycode
 * (例子.测试 is xn--fsqu00a.xn--0zwm56d); ASCII labels stay.  No IDNA2008
 * mapping or validation (NOTES.md).  Returns 0, or -1 for text that is not
 * UTF-8, an empty label, or a label or name that will not fit DNS.
 */
static int domain_to_ascii(const char *domain, char *out, size_t size)
{
	size_t o = 0, n, i, len, ncp;
	unsigned long cp[LABEL_MAX];
	char label[LABEL_MAX + 1];

	for (; *domain; domain += n + (domain[n] == '.')) {
		n = strcspn(domain, ".");
		if (n == 0)
			return -1;
		if (!has_8bit(domain, n)) {
			if (n > LABEL_MAX)
				return -1;
			memcpy(label, domain, n);
			label[n] = '\0';
		} else {
			for (i = ncp = 0; i < n; i += len)
				if (ncp >= LABEL_MAX ||
				    !(len = utf8_decode((const unsigned char *)domain + i, n - i, &cp[ncp++])))
					return -1;
			memcpy(label, "xn--", 4);
			if (punycode_encode(cp, ncp, label + 4, sizeof label - 4) < 0)
				return -1;
		}
		if (o + strlen(label) + 2 > size)
			return -1;
		o += (size_t)snprintf(out + o, size - o, "%s%s", o ? "." : "", label);
	}
	return o > 0 ? 0 : -1;
}

/* ---- Addresses (RFC 5321 4.1.2) ---------------------------------------- */

static int is_atext(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 4.1.3 IPv4-address-literal: four Snum, each 1 to 3 digits
 * and at most 255; leading zeros are legal ("127.0.0.01"), which is why
 * inet_pton(), which refuses them, is not used here. */
static int parse_ipv4(const char *p, unsigned char out[4])
{
	int i, digits, v;

	for (i = 0; i < 4; i++) {
		for (v = 0, digits = 0; isdigit((unsigned char)*p) && digits < 3; digits++)
			v = v * 10 + (*p++ - '0');
		if (digits == 0 || v > 255 || isdigit((unsigned char)*p))
			return -1;
		out[i] = (unsigned char)v;
		if (i < 3 && *p++ != '.')
			return -1;
	}
	return *p ? -1 : 0;
}

/* IPv6-addr (RFC 5321 4.1.3); an IPv4 tail ("::ffff:1.2.3.04") is read
 * as above and handed to inet_pton() in its plain form. */
static int parse_ipv6(const char *text, unsigned char out[16])
{
	char plain[INET6_ADDRSTRLEN + 16];
	const char *colon = strrchr(text, ':');
	unsigned char v4[4];

	if (!colon || strlen(text) >= sizeof plain)
		return -1;
	if (strchr(colon, '.')) {
		if (parse_ipv4(colon + 1, v4) < 0)
			return -1;
		snprintf(plain, sizeof plain, "%.*s%d.%d.%d.%d", (int)(colon + 1 - text), text,
			 v4[0], v4[1], v4[2], v4[3]);
		text = plain;
	}
	return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

/*
 * What an address literal "[...]" names: AF_INET or AF_INET6 with its
 * bytes, 0 for a General-address-literal "[tag:content]" (RFC 5321
 * 4.1.3: tag an Ldh-str ending in a letter or digit, content printable
 * without '[', ']', '\\'), -1 for anything else ("[:y]", "[1.2.3.4:5]").
 */
static int literal_address(const char *lit, unsigned char bytes[16])
{
	char text[DOMAIN_MAX + 1];
	size_t n = strlen(lit), tag;

	if (n < 3 || n - 2 >= sizeof text || lit[0] != '[' || lit[n - 1] != ']')
		return -1;
	memcpy(text, lit + 1, n - 2);
	text[n - 2] = '\0';
	if (strncasecmp(text, "IPv6:", 5) == 0)
		return parse_ipv6(text + 5, bytes) == 0 ? AF_INET6 : -1;
	if (parse_ipv4(text, bytes) == 0)
		return AF_INET;
	tag = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	if (tag == 0 || text[tag] != ':' || text[tag - 1] == '-' || text[tag + 1] == '\0')
		return -1;
	return strpbrk(text + tag + 1, "[]\\") ? -1 : 0;   /* parse_domain checked 33-126 */
}

/*
 * Domain = sub-domain *("." sub-domain), or an address literal "[...]".
 * RFC 6531 3.3: a sub-domain may also be a U-label, UTF-8 (例子.测试); its
 * A-label must fit DNS (RFC 5890 4.2), which domain_to_ascii checks.
 */
static const char *parse_domain(const char *p, char *out, int *literal)
{
	char ascii[DOMAIN_MAX + 1];
	unsigned char bin[16];
	size_t n = 0;

	*literal = (*p == '[');
	if (*literal) {
		do {
			if (n >= DOMAIN_MAX)
				return NULL;
			out[n++] = *p++;
		} while (*p && *p != ']' && *p != '[' && *p != '\\' && (unsigned char)*p > 32 && (unsigned char)*p < 127);
		if (*p != ']' || n < 2 || n >= DOMAIN_MAX)     /* room for ']' and NUL */
			return NULL;
		out[n++] = *p++;
		out[n] = '\0';
		return literal_address(out, bin) >= 0 ? p : NULL;
	}
	for (;;) {       /* one label: letter or digit, then letters, digits, hyphens */
		size_t label = 0, utf8 = 0;
		while (isalnum((unsigned char)*p) || (unsigned char)*p > 127 || (*p == '-' && label > 0)) {
			if (n >= DOMAIN_MAX)
				return NULL;
			utf8 |= (unsigned char)*p > 127;
			out[n++] = *p++;
			label++;
		}
		if (label == 0 || (label > LABEL_MAX && !utf8) || out[n - 1] == '-')
			return NULL;
		if (*p != '.')
			break;
		if (n >= DOMAIN_MAX)
			return NULL;
		out[n++] = *p++;
	}
	out[n] = '\0';
	if (has_8bit(out, n) && domain_to_ascii(out, ascii, sizeof ascii) < 0)
		return NULL;
	return p;
}

/* Local-part = Dot-string / Quoted-string. */
static const char *parse_local(const char *p, struct address *a)
{
	const char *begin = p;
	size_t n = 0;

	if (*p == '"') {
		a->quoted = 1;
		for (p++; *p != '"'; p++) {
			if (*p == '\\')    /* quoted-pair: backslash, then any printable */
				p++;
			if ((unsigned char)*p < 32 || (unsigned char)*p == 127 || n >= LOCAL_MAX)
				return NULL;
			a->local[n++] = *p;
		}
		p++;
	} else {
		int after_dot = 1;   /* no leading dot, no "..", no trailing dot */
		/* RFC 6531 3.3: atext includes UTF-8 beyond ASCII (张三) */
		for (; is_atext((unsigned char)*p) || (unsigned char)*p > 127 || *p == '.'; p++) {
			if (*p == '.' && after_dot)
				return NULL;
			after_dot = (*p == '.');
			if (n >= LOCAL_MAX)
				return NULL;
			a->local[n++] = *p;
		}
		if (n == 0 || after_dot)
			return NULL;
	}
	a->local[n] = '\0';
	if ((size_t)(p - begin) > LOCAL_MAX)
		return NULL;
	memcpy(a->raw, begin, (size_t)(p - begin));
	a->raw[p - begin] = '\0';
	return p;
}

/*
 * Parse a path "<...>" (RFC 5321 4.1.2).  A source route "@a,@b:" in front
 * is accepted and ignored (RFC 5321 3.6.1 and 4.1.1.3).  Returns a pointer
 * just past the '>' (where the parameters start) or NULL on a syntax error.
 */
static const char *parse_path(const char *p, struct address *a)
{
	const char *start = p;
	char route[DOMAIN_MAX + 1];
	int lit;

	memset(a, 0, sizeof *a);
	if (*p++ != '<')
		return NULL;
	if (*p == '>') {
		a->null = 1;
		return p + 1;
	}
	if (*p == '@') {
		for (;;) {
			if (!(p = parse_domain(p + 1, route, &lit)))
				return NULL;
			if (*p == ',' && p[1] == '@') {
				p++;
				continue;
			}
			if (*p++ != ':')
				return NULL;
			break;
		}
	}
	if (!(p = parse_local(p, a)))
		return NULL;
	if (*p == '@' && !(p = parse_domain(p + 1, a->domain, &a->literal)))
		return NULL;
	if (*p++ != '>' || p - start > PATH_LEN)
		return NULL;
	/* bytes beyond ASCII only as UTF-8 (the session checked a command
	 * line already; an aliases file is checked here), and none of the
	 * characters that act as line ends or reorder text */
	if (has_8bit(start, (size_t)(p - start)) && !utf8_scan(start, (size_t)(p - start), 1))
		return NULL;
	a->utf8 = has_8bit(start, (size_t)(p - start));
	return p;
}

/* The address as it goes on: local part as written, '@', domain. */
static void address_text(const struct address *a, char *out, size_t size)
{
	snprintf(out, size, "%s%s%s", a->raw, a->domain[0] ? "@" : "", a->domain);
}

/* ---- Which addresses are ours ----------------------------------------- */

/* An address literal is local when it names the address this connection
 * came in on (RFC 5321 4.1.3), e.g. [127.0.0.1] or [IPv6:::1]. */
static int literal_is_ours(const struct session *s, const char *lit)
{
	unsigned char want[16];
	const struct sockaddr_storage *ss = &s->local_sa;
	int family = literal_address(lit, want);

	if (family == AF_INET6) {
		if (ss->ss_family != AF_INET6)
			return 0;
		return memcmp(want, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16) == 0;
	}
	if (family != AF_INET || (ss->ss_family != AF_INET && ss->ss_family != AF_INET6))
		return 0;
	if (ss->ss_family == AF_INET)
		return memcmp(want, &((const struct sockaddr_in *)ss)->sin_addr, 4) == 0;
	/* an IPv4 client on a dual-stack socket: ::ffff:a.b.c.d */
	const unsigned char *v6 = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
	static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
	return memcmp(v6, mapped, 12) == 0 && memcmp(v6 + 12, want, 4) == 0;
}

/*
 * Domains are compared in their A-labels (RFC 5890 2.3.2.4: a U-label and
 * its A-label are the same label), ASCII letters in any case: -d 例子.测试
 * and -d xn--fsqu00a.xn--0zwm56d name one domain, which a client may
 * write either way.  Beyond ASCII, case and Unicode normalisation are not
 * folded (NOTES.md says why).
 */
static int is_domain(const char *domain, const char *ascii)
{
	char form[DOMAIN_MAX + 1];

	if (!has_8bit(domain, strlen(domain)))
		return strcasecmp(domain, ascii) == 0;
	return domain_to_ascii(domain, form, sizeof form) == 0 && strcasecmp(form, ascii) == 0;
}

static int is_local_domain(const struct session *s, const struct address *a)
{
	int i;

	if (a->domain[0] == '\0')
		return 1;               /* <postmaster> alone (RFC 5321 4.1.1.3) */
	if (a->literal)
		return literal_is_ours(s, a->domain);
	for (i = 0; i < cfg.ndomains; i++)
		if (is_domain(a->domain, cfg.domains_ascii[i]))
			return 1;
	return 0;
}

/* RFC 5321 4.5.1: postmaster at our own name (-n) is always ours, also
 * when -d names other local domains. */
static int is_our_postmaster(const struct address *a)
{
	return !a->literal && strcasecmp(a->local, "postmaster") == 0 &&
	       is_domain(a->domain, cfg.hostname);
}

/*
 * Turn a local part into a mailbox directory name: lower case, "+tag"
 * removed, and only [a-z0-9._-] with no leading dot.  This is what keeps
 * an address from naming a path outside the mail root ("../x", ".hidden",
 * "a/b"); it also refuses relay tricks such as "user%other" and "a!b".
 * UTF-8 characters are kept as they are (张三 is the Maildir ROOT/张三/):
 * the bytes of a valid UTF-8 character are all above 127, so none of
 * them is a '/' or a '.' (an overlong C0 AF, which a careless decoder
 * would read as '/', never got this far).  Only ASCII letters are
 * lowered: no Unicode case folding or normalisation (NOTES.md).
 */
static int mailbox_name(const char *local, char *name)
{
	size_t i;

	for (i = 0; local[i] && local[i] != '+'; i++) {
		int c = (unsigned char)local[i];
		c = c < 128 ? tolower(c) : c;
		if (!(islower(c) || isdigit(c) || c == '.' || c == '-' || c == '_' || c > 127))
			return -1;
		if (c == '.' && (i == 0 || local[i - 1] == '.'))
			return -1;
		name[i] = (char)c;
	}
	name[i] = '\0';
	return i == 0 ? -1 : 0;
}

static int by_name_nocase(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* The mail root's entries that have an upper-case letter (only those can
 * match a lower-case name that stat() did not find), sorted ignoring
 * case.  Made once per session, on the first miss: one scan of the root
 * per session instead of one per unknown recipient. */
static void build_mailbox_index(struct mbox_index *ix)
{
	struct dirent *de;
	const char *p;
	char **v;
	DIR *d;

	ix->built = 1;
	if (!(d = opendir(cfg.mailroot)))
		return;
	while ((de = readdir(d))) {
		for (p = de->d_name; *p && !isupper((unsigned char)*p); p++)
			;
		if (!*p || strlen(de->d_name) > LOCAL_MAX)   /* all lower case, or too long */
			continue;
		if (!(v = realloc(ix->names, (ix->n + 1) * sizeof *v)) || !(v[ix->n] = strdup(de->d_name))) {
			if (v)
				ix->names = v;
			break;              /* out of memory: the index is what we have */
		}
		ix->names = v;
		ix->n++;
	}
	closedir(d);
	if (ix->n > 1)
		qsort(ix->names, ix->n, sizeof *ix->names, by_name_nocase);
}

static void free_mailbox_index(struct mbox_index *ix)
{
	size_t i;

	for (i = 0; i < ix->n; i++)
		free(ix->names[i]);
	free(ix->names);
	memset(ix, 0, sizeof *ix);
}

/* Is ROOT/name a directory? */
static int is_mailbox_dir(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", cfg.mailroot, name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Does the Maildir ROOT/name exist?  One stat() of the (lower-case) name;
 * a mailbox made by hand as "Carol" is found for "carol" through the
 * session's index of mixed-case names.  real[] gets its spelling. */
static int mailbox_exists(struct session *s, const char *name, char *real)
{
	char **hit;

	if (is_mailbox_dir(name)) {
		snprintf(real, LOCAL_MAX + 1, "%s", name);
		return 1;
	}
	if (!s->mbx.built)
		build_mailbox_index(&s->mbx);
	hit = s->mbx.n ? bsearch(&name, s->mbx.names, s->mbx.n, sizeof *hit, by_name_nocase) : NULL;
	if (!hit || !is_mailbox_dir(*hit))
		return 0;
	memcpy(real, *hit, strlen(name) + 1);   /* equal ignoring case: same length */
	return 1;
}

/* ---- Recipients: aliases, mailboxes, the delivery list ------------------- */

static const struct alias *find_alias(const char *name)
{
	size_t i;
	for (i = 0; i < cfg.naliases; i++)
		if (strcmp(cfg.aliases[i].name, name) == 0)
			return &cfg.aliases[i];
	return NULL;
}

/*
 * Add one copy to the list, once: the same mailbox never gets two.  A
 * local copy is named by its mailbox (user); a remote one (user "") by
 * its address, compared as RFC 5321 2.4 says: the local part exactly
 * (only the host that owns it may treat "Bob" and "bob" as one; quotes
 * around a plain name do not count, 4.1.2), the domain ignoring case.
 * Returns 0 (added, or there already), -1 when the list is full, -2 when
 * memory is.
 */
static int add_delivery(struct dlist *dl, const char *rcpt, const char *user,
			const struct address *a)
{
	char key[ADDR_SIZE];
	size_t n = 0;
	int i;

	if (!user[0] && a) {    /* key: unquoted local part, '@', lower-case domain */
		n = (size_t)snprintf(key, sizeof key, "%s@", a->local);
		for (i = 0; a->domain[i] && n + 1 < sizeof key; i++)
			key[n++] = (char)tolower((unsigned char)a->domain[i]);
	}
	key[n] = '\0';
	for (i = 0; i < dl->n; i++)
		if (user[0] ? strcmp(dl->v[i].user, user) == 0
			    : !dl->v[i].user[0] && strcmp(dl->v[i].key, key) == 0)
			return 0;
	if (dl->n == dl->cap) {         /* grow: most messages have one recipient */
		int cap = dl->cap ? 2 * dl->cap : 8;
		struct delivery *v;
		if (dl->n >= DELIVERY_MAX)
			return -1;
		if (cap > DELIVERY_MAX)
			cap = DELIVERY_MAX;
		if (!(v = realloc(dl->v, (size_t)cap * sizeof *v)))
			return -2;
		dl->v = v;
		dl->cap = cap;
	}
	snprintf(dl->v[dl->n].rcpt, sizeof dl->v[dl->n].rcpt, "%s", rcpt);
	snprintf(dl->v[dl->n].user, sizeof dl->v[dl->n].user, "%s", user);
	memcpy(dl->v[dl->n].key, key, n + 1);
	dl->n++;
	return 0;
}

struct expansion {
	const char *seen[64];   /* aliases already expanded: loops stop here */
	int nseen, depth;
	int found;              /* mailboxes and remote addresses reached */
	int nomem;              /* some could not be added: out of memory */
};

/* What add_delivery said, counted for the expansion. */
static void note_added(struct expansion *x, int r, const struct session *s, const char *name)
{
	if (r == 0)
		x->found++;
	else if (r == -2)
		x->nomem = 1;
	else
		log_event(s, "alias-member-ignored member=\"%s\" reason=too-many", name);
}

static void expand_local(struct session *s, const char *name, const char *rcpt,
			 struct dlist *dl, struct expansion *x);

/* One member of an alias: a local name, a local address or a remote one. */
static void expand_member(struct session *s, const char *member,
			  struct dlist *dl, struct expansion *x)
{
	char path[PATH_LEN + 3], name[LOCAL_MAX + 1], text[ADDR_SIZE];
	struct address a;

	if (member[0] == '|' || member[0] == '/' || strncasecmp(member, ":include:", 9) == 0) {
		log_event(s, "alias-member-ignored member=\"%s\" reason=unsupported", member);
		return;
	}
	snprintf(path, sizeof path, member[0] == '<' ? "%s" : "<%s>", member);
	if (!parse_path(path, &a) || a.null) {
		log_event(s, "alias-member-ignored member=\"%s\" reason=syntax", member);
		return;
	}
	address_text(&a, text, sizeof text);
	if (!is_local_domain(s, &a)) {          /* forwarded: goes to the queue */
		note_added(x, add_delivery(dl, text, "", &a), s, member);
		return;
	}
	if (mailbox_name(a.local, name) < 0) {
		log_event(s, "alias-member-ignored member=\"%s\" reason=bad-name", member);
		return;
	}
	snprintf(text, sizeof text, "%s@%s", name, cfg.domains[0]);
	expand_local(s, name, text, dl, x);
}

/*
 * A local name: an alias expands to its members (each alias once, so a
 * loop a -> b -> a ends: the second "a" is taken as the mailbox a);
 * anything else is a mailbox, which must exist (or -A, or postmaster).
 */
static void expand_local(struct session *s, const char *name, const char *rcpt,
			 struct dlist *dl, struct expansion *x)
{
	const struct alias *al = find_alias(name);
	char real[LOCAL_MAX + 1];
	int i;

	for (i = 0; al && i < x->nseen; i++)
		if (x->seen[i] == al->name)
			al = NULL;
	if (al && x->depth < ALIAS_DEPTH && x->nseen < 64) {
		char *members = strdup(al->members), *m, *save = NULL;
		if (!members)
			return;
		x->seen[x->nseen++] = al->name;
		x->depth++;
		for (m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
			while (*m == ' ' || *m == '\t')
				m++;
			size_t n = strlen(m);
			while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\t'))
				m[--n] = '\0';
			if (n > 0)
				expand_member(s, m, dl, x);
		}
		x->depth--;
		free(members);
		return;
	}
	if (mailbox_exists(s, name, real))
		note_added(x, add_delivery(dl, rcpt, real, NULL), s, name);
	else if (cfg.autocreate || strcmp(name, "postmaster") == 0)     /* RFC 5321 4.5.1 */
		note_added(x, add_delivery(dl, rcpt, name, NULL), s, name);
	else if (x->depth > 0)  /* a member dropped: the 250 for the alias hides it */
		log_event(s, "alias-member-ignored member=\"%s\" reason=no-mailbox", name);
}

/*
 * Resolve one recipient into deliveries.  Returns the SMTP reply code:
 * 250, or the refusal (and sets *esc and *why).
 */
static int resolve_rcpt(struct session *s, const struct address *a,
			struct dlist *dl, const char **esc, const char **why)
{
	char text[ADDR_SIZE], name[LOCAL_MAX + 1];
	struct expansion x;

	address_text(a, text, sizeof text);
	if (a->domain[0] == '\0' && strcasecmp(a->local, "postmaster") != 0) {
		*esc = "5.1.3", *why = "Address needs a domain";
		return 501;
	}
	if (!is_local_domain(s, a) && !is_our_postmaster(a)) {
		if (!s->relay_ok) {
			/* No open relay (RFC 5321 7.9): a refusal by policy is
			 * 550 (3.6.2, 4.1.1.3); Postfix says 554 by default. */
			*esc = "5.7.1", *why = "Relay access denied";
			return 550;
		}
		switch (add_delivery(dl, text, "", a)) {
		case 0:
			return 250;
		case -1:
			*esc = "4.5.3", *why = "Too many recipients";
			return 452;
		default:
			*esc = "4.3.1", *why = "Insufficient system storage";
			return 452;
		}
	}
	if (mailbox_name(a->local, name) < 0) {
		/* valid syntax, refused by local policy: RFC 5321 4.3.2's 553 */
		*esc = "5.1.1", *why = "Mailbox name not allowed here";
		return 553;
	}
	if (a->domain[0] == '\0')
		snprintf(text, sizeof text, "%s@%s", name, cfg.domains[0]);
	memset(&x, 0, sizeof x);
	expand_local(s, name, text, dl, &x);
	if (x.found == 0 && x.nomem) {
		*esc = "4.3.1", *why = "Insufficient system storage";
		return 452;
	}
	if (x.found == 0) {
		*esc = "5.1.1", *why = "User unknown";
		return 550;
	}
	return 250;
}

/* ---- Small helpers for the commands ------------------------------------ */

/* An empty message, in memory.  The memory is kept for the next one. */
static void message_reset(struct message *m)
{
	char *mem = m->mem;

	if (m->spill >= 0)
		close(m->spill);
	memset(m, 0, sizeof *m);
	m->mem = mem;
	m->spill = -1;
	m->in_header = 1;
}

static void reset_transaction(struct session *s)
{
	s->smtputf8 = 0;
	s->sender[0] = '\0';
	s->first_rcpt[0] = '\0';
	s->nrcpt = 0;
	s->overshoot = 0;
	s->dl.n = 0;
	message_reset(&s->msg);
	if (s->state > ST_READY)
		s->state = ST_READY;
}

/* "FROM:" / "TO:" then optional spaces (tolerated, as most servers do). */
static const char *after_keyword(const char *arg, const char *kw)
{
	size_t n = strlen(kw);
	if (strncasecmp(arg, kw, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

/* The address VRFY or EXPN asks about: "<a@b>", "a@b" or a bare name. */
static int parse_query(const char *arg, struct address *a)
{
	char path[PATH_LEN + 3];
	const char *lt = strchr(arg, '<');

	if (lt)
		return parse_path(lt, a) ? 0 : -1;
	snprintf(path, sizeof path, "<%s>", arg);
	return parse_path(path, a) && !a->null ? 0 : -1;
}

static int lookup_local(struct session *s, const char *arg, struct dlist *dl, int *local)
{
	struct address a;
	char name[LOCAL_MAX + 1], text[ADDR_SIZE];
	struct expansion x;

	*local = 0;
	if (parse_query(arg, &a) < 0)
		return -1;
	if (!is_local_domain(s, &a))
		return 0;
	*local = 1;
	if (mailbox_name(a.local, name) < 0)
		return 0;
	snprintf(text, sizeof text, "%s@%s", name, cfg.domains[0]);
	memset(&x, 0, sizeof x);
	expand_local(s, name, text, dl, &x);
	return 0;
}

/* ---- The commands (RFC 5321 4.1.1), one function each --------------------- */

static void cmd_helo(struct session *s, char *arg);
static void cmd_ehlo(struct session *s, char *arg);
static void cmd_mail(struct session *s, char *arg);
static void cmd_rcpt(struct session *s, char *arg);
static void cmd_data(struct session *s, char *arg);
static void cmd_rset(struct session *s, char *arg);
static void cmd_noop(struct session *s, char *arg);
static void cmd_quit(struct session *s, char *arg);
static void cmd_vrfy(struct session *s, char *arg);
static void cmd_expn(struct session *s, char *arg);
static void cmd_help(struct session *s, char *arg);
static void cmd_unsupported(struct session *s, char *arg);

/*
 * The command table: reading it is reading the protocol.  Each row is a
 * verb, the states it is allowed in (else 503, RFC 5321 4.1.4) and JUNK
 * for the commands that move no mail (more than JUNK_MAX of them end the
 * session: a client that only NOOPs holds a slot for nothing), the
 * function, and the text HELP shows.  There is no "ends a pipelined group"
 * flag: replies are flushed whenever the input runs dry, which is exactly
 * when a pipelining client waits for them (RFC 2920 3.2).
 */
static const struct command {
	const char *verb;
	unsigned allowed;
	void (*run)(struct session *, char *);
	const char *help;
} commands[] = {
	{ "HELO", ANY_STATE, cmd_helo,
	  "HELO <your-hostname>: say hello, plain SMTP (RFC 5321 4.1.1.1)" },
	{ "EHLO", ANY_STATE, cmd_ehlo,
	  "EHLO <your-hostname>: say hello and list the extensions (RFC 5321 4.1.1.1)" },
	{ "MAIL", IN(ST_READY), cmd_mail,
	  "MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]: start a transaction;\n"
	  "<> is the null sender that bounces use (RFC 5321 4.1.1.2);\n"
	  "SMTPUTF8 allows UTF-8 in the addresses (RFC 6531 3.4)" },
	{ "RCPT", IN(ST_MAIL) | IN(ST_RCPT), cmd_rcpt,
	  "RCPT TO:<recipient>: add one recipient; repeat for more, up to 100 (RFC 5321 4.1.1.3)" },
	{ "DATA", IN(ST_MAIL) | IN(ST_RCPT), cmd_data,
	  "DATA: send the message, then a line holding only \".\" (RFC 5321 4.1.1.4)" },
	{ "RSET", ANY_STATE | JUNK, cmd_rset,
	  "RSET: forget the current transaction (RFC 5321 4.1.1.5)" },
	{ "VRFY", ANY_STATE | JUNK, cmd_vrfy,
	  "VRFY <user>: does this mailbox exist? Off unless smtpd runs with -V (RFC 5321 4.1.1.6)" },
	{ "EXPN", ANY_STATE | JUNK, cmd_expn,
	  "EXPN <alias>: list an alias's members. Off unless smtpd runs with -V (RFC 5321 4.1.1.7)" },
	{ "HELP", ANY_STATE | JUNK, cmd_help,
	  "HELP [command]: this text (RFC 5321 4.1.1.8)" },
	{ "NOOP", ANY_STATE | JUNK, cmd_noop,
	  "NOOP: do nothing, answer 250 (RFC 5321 4.1.1.9)" },
	{ "QUIT", ANY_STATE, cmd_quit,
	  "QUIT: end the session (RFC 5321 4.1.1.10)" },
	/* Known verbs this server does not implement: 502 (RFC 5321 4.2.4). */
	{ "STARTTLS", ANY_STATE, cmd_unsupported, "STARTTLS: not implemented (RFC 3207)" },
	{ "AUTH", ANY_STATE, cmd_unsupported, "AUTH: not implemented (RFC 4954)" },
	{ "BDAT", ANY_STATE, cmd_unsupported, "BDAT: not implemented (RFC 3030)" },
	{ "ETRN", ANY_STATE, cmd_unsupported, "ETRN: not implemented (RFC 1985)" },
	/* RFC 821's TURN, SEND, SOML, SAML: RFC 5321 dropped them (4.1.4,
	 * Appendix F.1 and F.6), and a server that meets one says 502. */
	{ "TURN", ANY_STATE, cmd_unsupported, "TURN: RFC 821's, dropped by RFC 5321 (F.1), not implemented" },
	{ "SEND", ANY_STATE, cmd_unsupported, "SEND: RFC 821's, dropped by RFC 5321 (F.6), not implemented" },
	{ "SOML", ANY_STATE, cmd_unsupported, "SOML: RFC 821's, dropped by RFC 5321 (F.6), not implemented" },
	{ "SAML", ANY_STATE, cmd_unsupported, "SAML: RFC 821's, dropped by RFC 5321 (F.6), not implemented" },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/*
 * RFC 5321 4.1.1.1: HELO and EHLO take one argument, a Domain or an
 * address-literal.  Labels may also hold '_' (real hosts have it in their
 * names); each is 1 to 63 octets, the whole at most 255.  Only the syntax
 * is checked: a name that is merely false must not be refused (4.1.4);
 * Received: shows the real address next to it.  What passes cannot carry
 * a CR, a TAB or a '(' into Received: or a reply.  So the literal is an
 * IPv4 or IPv6 one: a General-address-literal "[tag:content]" may hold
 * '(', ')', ';' and '"', and no host can have one (4.1.3: a tag must be
 * registered with IANA, and IPv6 is the only tag there is).
 */
static int valid_helo(const char *arg)
{
	char lit[DOMAIN_MAX + 1];
	unsigned char bin[16];
	const char *p, *end;
	size_t label = 0;
	int is_literal, family;

	if (arg[0] == '[')
		return (end = parse_domain(arg, lit, &is_literal)) && *end == '\0' &&
		       ((family = literal_address(lit, bin)) == AF_INET || family == AF_INET6);
	for (p = arg; *p; p++) {
		if (*p == '.' && label > 0)
			label = 0;
		else if ((isalnum((unsigned char)*p) || *p == '-' || *p == '_') && label < LABEL_MAX)
			label++;
		else
			return 0;
	}
	return label > 0 && p - arg <= DOMAIN_MAX;
}

/* RFC 5321 4.1.1.1 HELO/EHLO: the client names itself; a transaction in
 * progress is abandoned (4.1.4).  Trailing spaces are tolerated. */
static int greet(struct session *s, char *arg, const char *verb)
{
	size_t n = strlen(arg);

	while (n > 0 && arg[n - 1] == ' ')
		arg[--n] = '\0';
	if (n == 0) {
		reply_error(s, 501, "5.5.4", "Syntax: %s <hostname>", verb);
		return -1;
	}
	if (!valid_helo(arg)) {
		reply_error(s, 501, "5.5.4", "Syntax: %s takes one domain name or address literal", verb);
		return -1;
	}
	memcpy(s->helo, arg, n + 1);            /* n <= DOMAIN_MAX < sizeof s->helo */
	s->state = ST_READY;
	reset_transaction(s);
	return 0;
}

static void cmd_helo(struct session *s, char *arg)
{
	if (greet(s, arg, "HELO") == 0) {
		s->esmtp = 0;
		reply(s, 250, NULL, "%s Hello %s [%s]", cfg.hostname, s->helo, s->peer);
	}
}

/*
 * Does this server offer the extension, or did -E withhold it?  A
 * withheld PIPELINING cannot stop a client from sending commands ahead
 * (TCP is a stream, and each line is still read and answered in order,
 * as an old server would), so what changes is our side: every reply is
 * written the moment it is made, one write() each (vreply), never
 * gathered into one write per group (RFC 2920 3.2).
 */
static int offers(int ext)
{
	return !(cfg.withheld & (1u << ext));
}

/* RFC 5321 4.1.1.1 EHLO: the reply lists the extensions we implement,
 * less those -E withholds. */
static void cmd_ehlo(struct session *s, char *arg)
{
	char text[DOMAIN_MAX * 2 + INET6_ADDRSTRLEN + 200];   /* our name, theirs, the list */
	size_t n;
	int i;

	if (greet(s, arg, "EHLO") == 0) {
		s->esmtp = 1;
		n = (size_t)snprintf(text, sizeof text, "%s Hello %s [%s]", cfg.hostname, s->helo, s->peer);
		for (i = 0; i < NEXT && n < sizeof text; i++)
			if (offers(i))
				n += (size_t)snprintf(text + n, sizeof text - n, i == EXT_SIZE ? "\n%s %lu" : "\n%s",
						      ext_names[i], cfg.maxsize);
		reply(s, 250, NULL, "%s", text);
	}
}

/* MAIL parameters: SIZE (RFC 1870), BODY (RFC 6152) and SMTPUTF8 (RFC
 * 6531 3.4), only after EHLO, and only those of extensions we offer. */
static int mail_params(struct session *s, const char *p)
{
	while (*p == ' ')
		p++;
	while (*p) {
		size_t n = strcspn(p, " ");
		if (!s->esmtp) {
			reply_error(s, 555, "5.5.4", "Parameters need EHLO");
			return -1;
		}
		if (strncasecmp(p, "SIZE=", 5) == 0 && offers(EXT_SIZE)) {
			size_t digits = strspn(p + 5, "0123456789");
			unsigned long long size;
			if (digits == 0 || digits != n - 5 || digits > SIZE_DIGITS) {
				reply_error(s, 501, "5.5.4", "Bad SIZE parameter");
				return -1;
			}
			errno = 0;          /* 20 digits may not fit: then it is too big */
			size = strtoull(p + 5, NULL, 10);
			if (errno == ERANGE || size > cfg.maxsize) {   /* RFC 1870 6.1: refuse now */
				reply(s, 552, "5.3.4", "Message size exceeds fixed limit of %lu", cfg.maxsize);
				return -1;
			}
		} else if (strncasecmp(p, "BODY=", 5) == 0 && offers(EXT_8BITMIME)) {
			if (!((n == 9 && strncasecmp(p + 5, "7BIT", 4) == 0) ||
			      (n == 13 && strncasecmp(p + 5, "8BITMIME", 8) == 0))) {
				reply_error(s, 501, "5.5.4", "BODY must be 7BIT or 8BITMIME");
				return -1;
			}
		} else if (n == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0 && offers(EXT_SMTPUTF8)) {
			s->smtputf8 = 1;        /* a keyword without a value */
		} else {
			reply_error(s, 555, "5.5.4", "Unsupported parameter %.*s%s",
				    (int)(n > ECHO_MAX ? ECHO_MAX : n), p, n > ECHO_MAX ? "..." : "");
			return -1;
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* RFC 5321 4.1.1.2 MAIL: the envelope sender, where bounces go. */
static void cmd_mail(struct session *s, char *arg)
{
	const char *p = after_keyword(arg, "FROM:");
	struct address a;

	if (!p) {
		reply_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	if (!(p = parse_path(p, &a)) || (!a.null && !a.domain[0])) {
		reply_error(s, 501, "5.1.7", "Bad sender address syntax");
		return;
	}
	reset_transaction(s);
	if (mail_params(s, p) < 0) {
		s->smtputf8 = 0;
		return;
	}
	if (a.utf8 && !s->smtputf8) {           /* RFC 6531 3.5 */
		reply_error(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
		return;
	}
	address_text(&a, s->sender, sizeof s->sender);
	s->state = ST_MAIL;
	log_event(s, "mail from=<%s>", s->sender);
	reply(s, 250, "2.1.0", "Sender <%s> OK", s->sender);
}

/* RFC 5321 4.1.1.3 RCPT: one recipient; the reply says for this one alone
 * whether we take it. */
static void cmd_rcpt(struct session *s, char *arg)
{
	const char *p = after_keyword(arg, "TO:");
	const char *esc = "", *why = "";
	char text[ADDR_SIZE];
	struct address a;
	int code, before = s->dl.n;

	if (!p) {
		reply_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (!(p = parse_path(p, &a)) || a.null) {
		reply_error(s, 501, "5.1.3", "Bad recipient address syntax");
		return;
	}
	while (*p == ' ')
		p++;
	if (*p) {
		reply_error(s, 555, "5.5.4", "Unsupported parameter %.*s%s",
			    ECHO_MAX, p, strlen(p) > ECHO_MAX ? "..." : "");
		return;
	}
	if (a.utf8 && !s->smtputf8) {           /* RFC 6531 3.5: MAIL had no SMTPUTF8 */
		reply_error(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
		return;
	}
	address_text(&a, text, sizeof text);
	if (s->nrcpt >= RCPT_MAX) {             /* RFC 5321 4.5.3.1.10 */
		code = 452, esc = "4.5.3", why = "Too many recipients";
	} else {
		code = resolve_rcpt(s, &a, &s->dl, &esc, &why);
	}
	log_event(s, "rcpt to=<%s> status=%d", text, code);
	if (code != 250) {
		s->dl.n = before;
		/* refused: counts as an error.  452: try again later, no fault
		 * (a pipelining client sends all its RCPTs before it hears
		 * the first 452, RFC 2920 3.1), until so many that the client
		 * is not listening: RCPT after RCPT would keep the transaction,
		 * and a stopping server, going for ever. */
		if (code / 100 == 5 || ++s->overshoot > RCPT_OVERSHOOT)
			reply_error(s, code, esc, "<%s>: %s", text, why);
		else
			reply(s, code, esc, "<%s>: %s", text, why);
		return;
	}
	if (s->nrcpt++ == 0)
		snprintf(s->first_rcpt, sizeof s->first_rcpt, "%s", text);
	s->state = ST_RCPT;
	reply(s, 250, "2.1.5", "Recipient <%s> OK", text);
}

/* RFC 5321 4.1.1.5 RSET: abandon the transaction; HELO stays. */
static void cmd_rset(struct session *s, char *arg)
{
	if (*arg) {
		reply_error(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	reset_transaction(s);
	reply(s, 250, "2.0.0", "Ok");
}

/* RFC 5321 4.1.1.9 NOOP: an argument is allowed and ignored. */
static void cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 250, "2.0.0", "Ok");
}

/* RFC 5321 4.1.1.10 QUIT: 221, then we close. */
static void cmd_quit(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 221, "2.0.0", "%s closing connection", cfg.hostname);
	s->quit = 1;
}

/* RFC 5321 4.1.1.6 VRFY.  Off by default, since answering it truthfully
 * helps address harvesters; a site that turns it off MUST answer 252
 * (RFC 5321 7.3), "cannot verify, but will try" (3.5.3).  2.0.0: nothing
 * about the address was verified, and 252 must not seem to verify it. */
static void cmd_vrfy(struct session *s, char *arg)
{
	struct dlist dl = { NULL, 0, 0 };
	int local;

	struct address a;

	if (!*arg || (parse_query(arg, &a) == 0 && a.null)) {  /* <> names no mailbox */
		reply_error(s, 501, "5.5.4", "Syntax: VRFY <user>");
		return;
	}
	if (!cfg.vrfy) {
		reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
		return;
	}
	if (lookup_local(s, arg, &dl, &local) < 0)
		reply_error(s, 501, "5.1.3", "Bad address syntax");
	else if (!local)
		reply(s, 252, "2.0.0", "Not a local address; will accept and attempt delivery");
	else if (dl.n == 0)
		reply_error(s, 550, "5.1.1", "User unknown");
	else if (dl.n == 1)
		reply(s, 250, "2.1.5", "<%s>", dl.v[0].rcpt);
	else    /* RFC 5321 3.5.2: a list names no one mailbox; EXPN is for lists */
		reply(s, 252, "2.1.5", "That is a list of %d members; EXPN lists them", dl.n);
	free(dl.v);
}

/* RFC 5321 4.1.1.7 EXPN: one line per member of the alias.  Off by
 * default, like VRFY and for the same reason, and answered the same way:
 * RFC 5321 7.3 asks for 252 whether VRFY or EXPN is the one turned off
 * (many servers send 502 instead; NOTES.md says why). */
static void cmd_expn(struct session *s, char *arg)
{
	struct dlist dl = { NULL, 0, 0 };
	struct buffer text = { NULL, 0, 0 };
	int local, i;

	if (!*arg) {
		reply_error(s, 501, "5.5.4", "Syntax: EXPN <alias>");
		return;
	}
	if (!cfg.vrfy) {
		reply(s, 252, "2.0.0", "Cannot EXPN, the server runs without -V; will accept message and attempt delivery");
		return;
	}
	if (lookup_local(s, arg, &dl, &local) < 0)
		reply_error(s, 501, "5.1.3", "Bad address syntax");
	else if (!local || dl.n == 0)
		reply_error(s, 550, "5.1.1", "No such local alias or user");
	else {
		for (i = 0; i < dl.n; i++)
			if (buffer_printf(&text, "%s<%s>", i ? "\n" : "", dl.v[i].rcpt) < 0)
				break;
		if (i == dl.n)
			reply(s, 250, "2.1.5", "%.*s", (int)text.len, text.data);
		else
			reply(s, 451, "4.3.0", "Out of memory");
		free(text.data);
	}
	free(dl.v);
}

/* RFC 5321 4.1.1.8 HELP: the list, or one command's syntax and purpose. */
static void cmd_help(struct session *s, char *arg)
{
	size_t i;

	if (!*arg) {
		reply(s, 214, "2.0.0", "Commands, in the order of a session:\n"
		      "HELO EHLO MAIL RCPT DATA RSET VRFY EXPN HELP NOOP QUIT\n"
		      "\"HELP <command>\" explains one. The protocol is RFC 5321.");
		return;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (strcasecmp(arg, commands[i].verb) == 0) {
			reply(s, 214, "2.0.0", "%s", commands[i].help);
			return;
		}
	reply(s, 504, "5.5.4", "HELP: no such command: %.*s%s", ECHO_MAX, arg,
	      strlen(arg) > ECHO_MAX ? "..." : "");
}

/* RFC 5321 4.2.4: a command we know of but do not implement. */
static void cmd_unsupported(struct session *s, char *arg)
{
	(void)arg;
	reply_error(s, 502, "5.5.1", "Command not implemented");
}

/* ---- DATA: the byte machine, and where the message is kept ---------------- */

static int write_all_fd(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Where the message goes while it arrives.  Up to MSG_MEM_MAX bytes stay
 * in memory (most mail is small, and this keeps its path fast).  Beyond
 * that the bytes go to a spill file as they arrive, MSG_MEM_MAX at a
 * time, so a session's memory does not grow with the message.  The file
 * is made in the queue's tmp/ and its name removed at once: nothing is
 * left behind by a crash, and the space comes back when it is closed.
 * Each delivery copies from it.
 */
static int message_spill(struct message *m)
{
	char path[PATH_MAX];

	if (m->spill < 0) {
		snprintf(path, sizeof path, "%s/tmp/spill.XXXXXX", cfg.queuedir);
		if ((m->spill = mkstemp(path)) < 0)     /* O_EXCL, mode 0600 */
			return -1;
		unlink(path);
	}
	if (write_all_fd(m->spill, m->mem, m->len) < 0)
		return -1;
	m->spilled += (off_t)m->len;
	m->len = 0;
	return 0;
}

/* RFC 5321 6.3: count the header's Received: lines as the bytes pass. */
static void count_hop(struct message *m, char c)
{
	if (!m->in_header)
		return;
	if (c == '\n') {
		if (m->line_len == 0)           /* the empty line: the header ends */
			m->in_header = 0;
		m->line_len = 0;
	} else if (m->line_len < 9) {
		m->line_head[m->line_len++] = c;
		if (m->line_len == 9 && strncasecmp(m->line_head, "Received:", 9) == 0)
			m->hops++;
	}
}

/* Keep one byte of the message.  A message that will be refused at its
 * end (too big, a bare CR or LF, a NUL, a failed write) is still read to
 * the end, but no longer kept: RFC 5321 4.5.3.1.9 (552 after the data)
 * and RFC 1870 6.3 (more than the limit, whatever SIZE declared). */
static void keep_byte(struct message *m, char c)
{
	if (m->size == 0 && (c == ' ' || c == '\t'))
		m->folded_start = 1;
	m->size += (c == '\n') ? 2 : 1;         /* size on the wire: CRLF */
	if (m->size > cfg.maxsize)
		m->too_big = 1;
	if (m->too_big || m->bare || m->nul || m->error)
		return;
	count_hop(m, c);
	if (m->len == MSG_MEM_MAX && message_spill(m) < 0) {
		m->error = errno;
		return;
	}
	m->mem[m->len++] = c;
}

/* With -v: each line of the message as it crossed the wire (dots not yet
 * removed), split at CRLF only, so a bare LF or CR shows inside a line
 * as \n or \r: a smuggling attempt is visible in the transcript. */
static void log_wire(struct session *s, char c)
{
	struct message *m = &s->msg;

	if (c == '\n' && m->wire_cr) {
		log_client(s, m->wire, m->wire_len);
		m->wire_len = 0;
		m->wire_cr = 0;
		return;
	}
	if (m->wire_cr && m->wire_len < sizeof m->wire)  /* a CR without its LF */
		m->wire[m->wire_len++] = '\r';
	m->wire_cr = (c == '\r');
	if (!m->wire_cr && m->wire_len < sizeof m->wire)
		m->wire[m->wire_len++] = c;
}

/* The states of the DATA byte machine. */
enum data_state {
	D_BOL,      /* just after CRLF (or DATA's own CRLF): a dot is special */
	D_TEXT,     /* inside a line */
	D_CR,       /* after a CR: only LF may follow */
	D_DOT,      /* after a dot at the start of a line */
	D_DOT_CR    /* after "<CRLF>.<CR>": LF ends the data */
};

/* A byte inside a line.  An LF here has no CR before it: a bare LF, which
 * does not end the line.  A NUL is no more allowed in mail than a bare
 * CR or LF (RFC 2045 2.7, 2.8): a next hop that drops NULs would read
 * "<CRLF>\0.<CRLF>" as the end of the data. */
static enum data_state text_byte(struct message *m, char c)
{
	if (c == '\r')
		return D_CR;
	if (c == '\n')
		m->bare = 1;
	if (c == '\0')
		m->nul = 1;
	keep_byte(m, c);
	return D_TEXT;
}

/*
 * Read the message after 354, byte by byte from the input buffer.
 * RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF, and only that: a
 * bare LF (or CR) never ends a line here, so "<LF>.<LF>" cannot end the
 * message early -- the 2023 SMTP smuggling attack needs a server that
 * lets it.  A bare CR or LF anywhere sets m->bare and the message is
 * refused at its end (RFC 5321 2.3.8).  RFC 5321 4.5.2: a line starting
 * with "." has had that dot doubled by the client; we remove one.
 * Lines are stored with LF ends, as Maildir expects.
 * Returns 1 at the end of data, or an IN_ code (EOF, timeout, error).
 */
static int read_data(struct session *s)
{
	struct message *m = &s->msg;
	enum data_state st = D_BOL;
	int r;

	message_reset(m);
	if (!m->mem && !(m->mem = malloc(MSG_MEM_MAX)))
		m->error = ENOMEM;
	set_deadline(s);
	for (;;) {
		char c;
		if (s->in_start == s->in_end && (r = fill(s, 0)) < 0)
			return r;
		c = s->in[s->in_start++];
		if (cfg.verbose)
			log_wire(s, c);
		switch (st) {
		case D_BOL:
			st = (c == '.') ? D_DOT : text_byte(m, c);
			break;
		case D_DOT:         /* ".\r" may end the data; else drop the dot */
			st = (c == '\r') ? D_DOT_CR : text_byte(m, c);
			break;
		case D_TEXT:
			st = text_byte(m, c);
			break;
		case D_CR:
		case D_DOT_CR:
			if (c == '\n') {
				if (st == D_DOT_CR)
					return 1;           /* CRLF . CRLF */
				keep_byte(m, '\n');
				set_deadline(s);            /* a new line */
				st = D_BOL;
				break;
			}
			m->bare = 1;                        /* a CR without its LF */
			st = text_byte(m, c);
			break;
		}
	}
}

/* Copy the whole message into fd: from memory, or from the spill file
 * (through the same memory, MSG_MEM_MAX at a time). */
static int write_message(int fd, struct message *m)
{
	off_t off = 0;
	ssize_t n;

	if (m->spill < 0)
		return write_all_fd(fd, m->mem, m->len);
	while (off < m->spilled) {
		size_t want = m->spilled - off > MSG_MEM_MAX ? MSG_MEM_MAX : (size_t)(m->spilled - off);
		n = pread(m->spill, m->mem, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;        /* the file is shorter than we wrote */
			return -1;
		}
		if (write_all_fd(fd, m->mem, (size_t)n) < 0)
			return -1;
		off += n;
	}
	return 0;
}

/* ---- Delivery: Maildir and the queue ------------------------------------ */

/* A unique name (maildir(5)): seconds, microseconds, pid, a counter. */
static void new_id(char *id, size_t size)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, size, "%lld.M%06ldP%ldQ%lu", (long long)ts.tv_sec,
		 ts.tv_nsec / 1000, (long)getpid(), ++deliveries_made);
}

/* A clause of a header field: on the same line after a space if
 * that line stays within RECEIVED_LINE_MAX characters, else on a new one
 * (a fold: LF, stored as CRLF on the wire, and a tab; RFC 5322 2.2.3),
 * as RFC 5322 2.1.1 asks (lines SHOULD be under 78).  Only the date and
 * the "([address])" after the HELO name are folded this way: the "by"
 * line holds our id, which is longer than the room a date needs, so the
 * date always goes on a line of its own there, and after "for <address>"
 * the address alone decides; after a long HELO name (a cloud host's,
 * ec2-203-0-113-250.ap-southeast-2.compute.amazonaws.com) the address
 * goes on a line of its own.  The layout does not depend on the pid's
 * length: tests and NOTES figures stay stable. */
static int fold_clause(struct buffer *b, const char *clause)
{
	const char *bol = b->data;
	size_t col, i, n = strlen(clause);

	for (i = 0; i < b->len; i++)            /* the current line starts after the last LF */
		if (b->data[i] == '\n')
			bol = b->data + i + 1;
	col = (size_t)(b->data + b->len - bol);
	if (col + 1 + n > RECEIVED_LINE_MAX)
		return buffer_printf(b, "\n\t%s", clause);
	return buffer_printf(b, " %s", clause);
}

/* RFC 5321 4.4 trace line.  "for" only with one recipient, so Bcc
 * recipients never see each other's addresses.  A message whose first
 * line starts with a space or a tab has no header (RFC 5322 2.2.3: that
 * line could only continue a field before it), and it would continue
 * ours: " (authenticated as ceo)" would read as part of our Received:.
 * An empty line after ours makes it what it is, the body; not one byte
 * of the client's changes.  The id clause is ID =
 * "id" ( Atom / msg-id ); our id has dots, which an Atom may not, so it
 * goes in the msg-id form <id@name>, and stays the id used everywhere.
 * "with": SMTP after HELO, ESMTP after EHLO, UTF8SMTP for a transaction
 * opened with SMTPUTF8 (RFC 6531 4.3). */
static int build_received(const struct session *s, const char *id, struct buffer *b)
{
	char date[64], peer[sizeof s->peer + 16];
	time_t now = time(NULL);
	struct tm tm;

	if (!localtime_r(&now, &tm))       /* no time zone data (out of memory): UTC */
		gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	snprintf(peer, sizeof peer, "([%s%s])", s->peer_v6 ? "IPv6:" : "", s->peer);
	if (buffer_printf(b, "Received: from %s", s->helo) < 0 || fold_clause(b, peer) < 0 ||
	    buffer_printf(b, "\n\tby %s with %s id <%s@%s>", cfg.hostname,
			  s->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP", id, cfg.hostname) < 0)
		return -1;
	if (s->nrcpt == 1 && buffer_printf(b, "\n\tfor <%s>", s->first_rcpt) < 0)
		return -1;
	return buffer_add(b, ";", 1) < 0 || fold_clause(b, date) < 0 ? -1 :
	       buffer_add(b, "\n\n", s->msg.folded_start ? 2 : 1);
}

/* Create path (it must not exist), write head and message, fsync.  On any
 * failure the file is removed and errno tells why. */
static int write_durably(const char *path, const struct buffer *head, struct message *msg)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600), saved;

	if (fd < 0)
		return -1;
	if (write_all_fd(fd, head->data, head->len) == 0 && write_message(fd, msg) == 0 &&
	    fsync(fd) == 0) {
		if (close(fd) == 0)
			return 0;
		fd = -1;
	}
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(path);
	errno = saved;
	return -1;
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY), r, saved;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* mkdir that is content when the directory is there: 1 made, 0 there, -1. */
static int make_dir(const char *path)
{
	if (mkdir(path, 0700) == 0)
		return 1;
	return errno == EEXIST ? 0 : -1;
}

/*
 * The Maildir ROOT/user with tmp/ new/ cur/ (created for -A and
 * postmaster).  A new directory is only durable once the directory that
 * holds its name is fsynced: the root after ROOT/user, ROOT/user after
 * its three.  Without that, a crash after the 250 could take the new
 * Maildir, and the message in it, away.
 */
static int ensure_maildir(const char *user)
{
	static const char *sub[] = { "", "/tmp", "/new", "/cur" };
	char path[PATH_MAX];
	int i, r, made_user = 0, made_sub = 0;

	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s%s", cfg.mailroot, user, sub[i]);
		if ((r = make_dir(path)) < 0)
			return -1;
		*(i == 0 ? &made_user : &made_sub) |= r;
	}
	snprintf(path, sizeof path, "%s/%s", cfg.mailroot, user);
	if ((made_user && sync_dir(cfg.mailroot) < 0) || (made_sub && sync_dir(path) < 0))
		return -1;
	return 0;
}

/* A file written in tmp/ that becomes visible by rename() into its dir. */
struct pending {
	const char *kind;                   /* "stored" or "queued", for the log */
	char tmp[PATH_MAX], dst[PATH_MAX], dir[PATH_MAX];
};

/* One copy into a Maildir's tmp/: Return-Path (added at final delivery,
 * RFC 5321 4.4), Delivered-To (no standard demands it: qmail's and
 * Postfix's practice, described in RFC 9228 4), our Received:, the
 * message. */
static int write_maildir_copy(struct session *s, const struct delivery *d,
			      const char *name, const struct buffer *received, struct pending *p)
{
	struct buffer head = { NULL, 0, 0 };
	int r;

	if (ensure_maildir(d->user) < 0)
		return -1;
	p->kind = "stored";
	snprintf(p->tmp, sizeof p->tmp, "%s/%s/tmp/%s", cfg.mailroot, d->user, name);
	snprintf(p->dst, sizeof p->dst, "%s/%s/new/%s", cfg.mailroot, d->user, name);
	snprintf(p->dir, sizeof p->dir, "%s/%s/new", cfg.mailroot, d->user);
	if (buffer_printf(&head, "Return-Path: <%s>\nDelivered-To: %s\n", s->sender, d->rcpt) < 0 ||
	    buffer_add(&head, received->data, received->len) < 0) {
		free(head.data);
		errno = ENOMEM;
		return -1;
	}
	r = write_durably(p->tmp, &head, &s->msg);
	free(head.data);
	return r;
}

/*
 * The queue entry (format in NOTES.md, read by smtp_send's parse_entry):
 * envelope lines, an empty line, then the message with our Received: on
 * top.  An address goes in as "<" address ">" exactly as accepted, so it
 * may itself hold '>', '<', '@', spaces (quoted local parts), UTF-8: a
 * reader takes everything between the first '<' and the last '>' of the
 * line.  No address can hold a CR or LF (parse_local refuses them).
 * Version 2: "smtputf8 yes" when the transaction was opened with
 * SMTPUTF8, so the next hop is asked for it too (RFC 6531 3.4).
 */
static int queue_entry_head(const struct session *s, const char *id, struct buffer *head)
{
	long long now = (long long)time(NULL);
	int i, r = 0;

	r |= buffer_printf(head, "version 2\nid %s\n%ssender <%s>\narrival %lld\n"
			   "attempts 0\nnext %lld\n", id, s->smtputf8 ? "smtputf8 yes\n" : "",
			   s->sender, now, now);
	for (i = 0; i < s->dl.n; i++)
		if (!s->dl.v[i].user[0])
			r |= buffer_printf(head, "rcpt <%s>\n", s->dl.v[i].rcpt);
	r |= buffer_add(head, "\n", 1);
	return r;
}

static int write_queue_entry(struct session *s, const char *id,
			     const struct buffer *received, struct pending *p)
{
	struct buffer head = { NULL, 0, 0 };
	int r;

	p->kind = "queued";
	snprintf(p->tmp, sizeof p->tmp, "%s/tmp/%s", cfg.queuedir, id);
	snprintf(p->dst, sizeof p->dst, "%s/entries/%s", cfg.queuedir, id);
	snprintf(p->dir, sizeof p->dir, "%s/entries", cfg.queuedir);
	if (queue_entry_head(s, id, &head) < 0 || buffer_add(&head, received->data, received->len) < 0) {
		free(head.data);
		errno = ENOMEM;
		return -1;
	}
	r = write_durably(p->tmp, &head, &s->msg);
	free(head.data);
	return r;
}

/*
 * Store the message for every delivery, all or nothing.  First every copy
 * is written and fsynced in a tmp/ directory; only when all are durable
 * are they renamed into place (new/, queue entries/) and those
 * directories fsynced.  rename() is atomic, so a reader never sees half a
 * file, and a crash before the 250 leaves only tmp/ files behind.
 * Returns 0, or -1 with errno set and nothing left in any new/.
 */
static int deliver(struct session *s, char *id, size_t idsize)
{
	struct buffer received = { NULL, 0, 0 };
	struct pending *pv;
	char name[sizeof cfg.file_host + 160];
	int i, np = 0, nremote = 0, r = 0, renamed = 0, saved = 0;

	new_id(id, idsize);
	snprintf(name, sizeof name, "%s.%s", id, cfg.file_host);
	if (!(pv = calloc((size_t)s->dl.n + 1, sizeof *pv)) || build_received(s, id, &received) < 0) {
		free(pv);
		free(received.data);
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < s->dl.n && r == 0; i++) {
		if (!s->dl.v[i].user[0])
			nremote++;
		else if ((r = write_maildir_copy(s, &s->dl.v[i], name, &received, &pv[np])) == 0)
			np++;
	}
	if (r == 0 && nremote > 0 && (r = write_queue_entry(s, id, &received, &pv[np])) == 0)
		np++;
	for (i = 0; r == 0 && i < np; i++)
		if ((r = rename(pv[i].tmp, pv[i].dst)) == 0)
			renamed++;
	for (i = 0; r == 0 && i < np; i++)
		r = sync_dir(pv[i].dir);
	if (r < 0) {                            /* undo: nothing half-delivered */
		saved = errno;
		for (i = 0; i < np; i++)
			unlink(i < renamed ? pv[i].dst : pv[i].tmp);
	}
	for (i = 0; i < np && r == 0; i++)
		log_event(s, "%s id=%s path=%s", pv[i].kind, id, pv[i].dst);
	free(pv);
	free(received.data);
	errno = saved;
	return r;
}

/* Out of memory or disk, while receiving or delivering: 452 4.3.1, try
 * again later (RFC 3463: mail system full).  Any other error: 451. */
static void storage_failure(struct session *s, int error)
{
	if (error == ENOSPC || error == EDQUOT || error == EFBIG || error == ENOMEM)
		reply(s, 452, "4.3.1", "Insufficient system storage");
	else
		reply(s, 451, "4.3.0", "Local error in processing");
}

/* The 250 after DATA says what was done: "stored" when every copy went
 * into a Maildir here, "queued" when every recipient is remote (the
 * message waits in the queue for smtp_send -q to relay it), "stored and
 * queued" when both. */
static const char *what_happened(const struct session *s)
{
	int i, local = 0, remote = 0;

	for (i = 0; i < s->dl.n; i++)
		*(s->dl.v[i].user[0] ? &local : &remote) += 1;
	return !remote ? "stored" : !local ? "queued" : "stored and queued";
}

/* RFC 5321 4.1.1.4 DATA: 354, the message, then one reply for all of it. */
static void cmd_data(struct session *s, char *arg)
{
	struct message *m = &s->msg;
	char id[128];
	int r;

	if (*arg) {
		reply_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->state != ST_RCPT) {              /* RFC 5321 3.3: no recipient */
		/* Not an error: a pipelining client meets this after its
		 * recipients were refused (RFC 2920 3.1).  But it moves no mail,
		 * and repeated it would keep a transaction open for ever. */
		if (!junk_over(s))
			reply(s, 554, "5.5.1", "No valid recipients");
		return;
	}
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	r = read_data(s);
	if (r == IN_TIMEOUT) {
		reply(s, 421, "4.4.2", "%s Timeout during DATA, closing connection", cfg.hostname);
		s->quit = 1;
		return;
	}
	if (r < 0) {                            /* client gone: nothing is kept */
		log_event(s, "data-aborted reason=disconnect");
		s->quit = 1;
		return;
	}
	if (!m->error && m->spill >= 0 && m->len > 0 && message_spill(m) < 0)
		m->error = errno;               /* the tail of a spilled message */
	if (m->bare) {
		log_event(s, "rejected reason=bare-cr-or-lf");
		reply(s, 550, "5.6.0", "Message has a bare CR or LF; lines must end in CRLF (RFC 5321 2.3.8)");
	} else if (m->nul) {
		log_event(s, "rejected reason=nul");
		reply(s, 550, "5.6.0", "Message has a NUL byte; mail may not contain NUL (RFC 2045 2.8)");
	} else if (m->too_big) {
		log_event(s, "rejected reason=too-big size=%lu", m->size);
		reply(s, 552, "5.3.4", "Message size exceeds fixed limit of %lu", cfg.maxsize);
	} else if (m->error) {
		log_event(s, "receive-failed error=\"%s\"", strerror(m->error));
		storage_failure(s, m->error);
	} else if (m->hops > HOPS_MAX) {
		log_event(s, "rejected reason=mail-loop");
		reply(s, 554, "5.4.6", "Too many Received: headers, mail loop (RFC 5321 6.3)");
	} else if (deliver(s, id, sizeof id) < 0) {
		log_event(s, "delivery-failed error=\"%s\"", strerror(errno));
		storage_failure(s, errno);
	} else {
		reply(s, 250, "2.0.0", "Ok: %s as %s", what_happened(s), id);
		/* a client that delivers mail is not idling (a RSET after
		 * each message is common) nor guessing addresses (a list
		 * has stale members): both counts start again, as Postfix's
		 * do (its error limit counts errors "without delivering") */
		s->junk = 0;
		s->errors = 0;
	}
	reset_transaction(s);
}

/* ---- The session ---------------------------------------------------------- */

/* Find the verb in the table, check the state, run it. */
static void dispatch(struct session *s, char *line)
{
	size_t n = strcspn(line, " "), i;
	char *arg = line + n;

	while (*arg == ' ')
		arg++;
	for (i = 0; i < NCOMMANDS; i++)
		if (strlen(commands[i].verb) == n && strncasecmp(line, commands[i].verb, n) == 0)
			break;
	if (i < NCOMMANDS && commands[i].run == cmd_help && !offers(EXT_HELP))
		i = NCOMMANDS;                  /* -E HELP: as if we never knew it */
	if (i == NCOMMANDS) {
		reply_error(s, 500, "5.5.2", "Command unrecognized");
		return;
	}
	if ((commands[i].allowed & JUNK) && junk_over(s))
		return;
	if (!(commands[i].allowed & IN(s->state))) {
		const char *why = s->state == ST_START ? "Send HELO or EHLO first"
			: commands[i].run == cmd_mail ? "Sender already given (RSET starts over)"
			: commands[i].run == cmd_rcpt ? "Need MAIL before RCPT"
			: "Need MAIL and RCPT before DATA";
		reply_error(s, 503, "5.5.1", "%s", why);
		return;
	}
	commands[i].run(s, arg);
}

/* Who is on the other end, and may they relay? */
static int cidr_match(const struct cidr *c, int family, const unsigned char *addr)
{
	int full = c->bits / 8, rest = c->bits % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return 0;
	return rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

/* A peer's address family and bytes; an IPv4 client on a dual-stack
 * socket (::ffff:a.b.c.d) is IPv4. */
static int peer_address(const struct sockaddr_storage *ss, const unsigned char **bytes)
{
	static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};

	if (ss->ss_family == AF_INET6) {
		*bytes = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		if (memcmp(*bytes, mapped, 12) != 0)
			return AF_INET6;
		*bytes += 12;
		return AF_INET;
	}
	*bytes = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
	return AF_INET;
}

static void identify_peer(struct session *s, const struct sockaddr_storage *ss)
{
	const unsigned char *bytes;
	int family = peer_address(ss, &bytes), i;

	inet_ntop(family, bytes, s->peer, sizeof s->peer);
	s->peer_v6 = (family == AF_INET6);
	for (i = 0; i < cfg.nrelay && !s->relay_ok; i++)
		s->relay_ok = cidr_match(&cfg.relay[i], family, bytes);
}

/*
 * RFC 5321 2.4: commands are US-ASCII, and a NUL would cut the line
 * short.  RFC 6531 3.3: UTF-8 may stand in the address of MAIL and RCPT,
 * between its '<' and '>', and nowhere else; whether the transaction
 * allows it is cmd_mail's and cmd_rcpt's question.  Returns 0 when the
 * line may run, else the reply: 501 for bytes that are not UTF-8 at all
 * (RFC 3629: an overlong form, a surrogate, a stray byte; refused in
 * every case), 500 for a NUL, or 8-bit bytes anywhere else.
 */
static int command_bytes(const char *line, size_t n)
{
	const char *lt = memchr(line, '<', n), *gt = NULL;
	size_t i;

	if (memchr(line, '\0', n))
		return 500;
	if (!has_8bit(line, n))
		return 0;
	if (!utf8_valid(line, n))
		return 501;
	for (i = 0; i < n; i++)
		gt = line[i] == '>' ? line + i : gt;
	if (strncasecmp(line, "MAIL ", 5) != 0 && strncasecmp(line, "RCPT ", 5) != 0)
		return 500;
	for (i = 0; i < n; i++)
		if ((unsigned char)line[i] > 127 && (!lt || !gt || line + i < lt || line + i > gt))
			return 500;
	return 0;
}

/* One client, from greeting to close.  Runs in its own process. */
static void session(int fd, const struct sockaddr_storage *peer)
{
	struct session *s = malloc(sizeof *s);
	char line[CMD_LINE_MAX + 1];
	socklen_t len = sizeof s->local_sa;
	struct timeval tv;
	int n, code;

	if (!s) {
		fprintf(stderr, "smtpd: out of memory\n");
		return;
	}
	/* Zero the state, not the I/O buffers: a fresh session touches only
	 * the pages it uses (page faults are a good part of a short
	 * session's cost; make bench-peers). */
	memset(s, 0, offsetof(struct session, in));
	s->msg.spill = -1;
	s->fd = fd;
	snprintf(s->id, sizeof s->id, "%lx.%ld", (unsigned long)time(NULL), (long)getpid());
	if (getsockname(fd, (struct sockaddr *)&s->local_sa, &len) < 0)
		log_event(s, "getsockname error=\"%s\"", strerror(errno));
	identify_peer(s, peer);
	tv.tv_sec = cfg.timeout;                /* a client that stops reading */
	tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	log_event(s, "connect client=%s relay=%s", s->peer, s->relay_ok ? "yes" : "no");

	/* RFC 5321 3.1 and 4.2: the greeting. */
	reply(s, 220, NULL, "%s ESMTP", cfg.hostname);
	while (!s->quit && !s->dead) {
		n = read_line(s, line);
		if (n == IN_TIMEOUT) {          /* RFC 5321 4.5.3.2.7 */
			reply(s, 421, "4.4.2", "%s Idle timeout, closing connection", cfg.hostname);
			log_event(s, "timeout");
			break;
		}
		if (n == IN_EOF || n == IN_ERROR) {
			log_event(s, "client-gone state=%s", state_names[s->state]);
			break;
		}
		if (n == IN_STOP) {             /* SIGTERM: RFC 5321 3.8 allows 421 */
			reply(s, 421, "4.3.2", "%s Service shutting down, closing connection", cfg.hostname);
			log_event(s, "shutdown");
			break;
		}
		if (n == IN_TOO_LONG) {         /* RFC 5321 4.5.3.1.4 */
			reply_error(s, 500, "5.5.2", "Line too long (limit %d octets with CRLF)", CMD_LINE_MAX);
			continue;
		}
		if (cfg.verbose)
			log_client(s, line, (size_t)n);
		if (n == 0) {                   /* not the end: RFC 5321 3.8, RFC 2920 3.2 */
			reply_error(s, 500, "5.5.2", "Syntax error, empty command");
			continue;
		}
		if ((code = command_bytes(line, (size_t)n)) == 501) {
			reply_error(s, 501, "5.5.4", "Not UTF-8: a stray, overlong or surrogate byte sequence (RFC 3629)");
			continue;
		}
		if (code) {
			reply_error(s, 500, "5.5.2", "Commands are 7-bit ASCII without NUL bytes");
			continue;
		}
		dispatch(s, line);
	}
	flush_out(s);
	close(fd);
	log_event(s, "disconnect");
	message_reset(&s->msg);
	free(s->msg.mem);
	free(s->dl.v);
	free_mailbox_index(&s->mbx);
	free(s);
}

/* ---- Start-up ------------------------------------------------------------- */

#define USAGE \
	"usage: smtpd [-a addr] [-p port] [-m maildir-root] [-d domain]... [-n hostname] [-A]\n" \
	"             [-q queue-dir] [-r cidr]... [-s max-bytes] [-c max-sessions]\n" \
	"             [-C max-per-client] [-t seconds] [-x aliases-file] [-E keyword]...\n" \
	"             [-V] [-v]\n" \
	"       smtpd -h\n"

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(2);
}

/* -h: the options with their meaning and defaults (the file head's list). */
static void help(void)
{
	fputs(USAGE
	      "  -a addr      listen address, IPv4 or IPv6 [127.0.0.1]\n"
	      "  -p port      listen port; 0 picks a free one (logged) [2525]\n"
	      "  -m dir       mail root; user U's mailbox is the Maildir dir/U/ [./mail]\n"
	      "  -d domain    a local domain, repeatable [localhost and the -n name]\n"
	      "  -n name      our name in the greeting, Received: and file names [gethostname()]\n"
	      "  -A           create a user's Maildir on first delivery [only existing ones]\n"
	      "  -q dir       queue for non-local recipients [./queue]\n"
	      "  -r cidr      clients allowed to relay, repeatable [127.0.0.0/8 and ::1]\n"
	      "  -s bytes     largest message accepted, advertised in SIZE [10485760]\n"
	      "  -c n         concurrent sessions; one more gets 421 4.3.2 [20]\n"
	      "  -C n         concurrent sessions from one client address; one more\n"
	      "               gets 421 4.7.0 [no limit but -c]\n"
	      "  -t seconds   time allowed for each line (command or message line),\n"
	      "               so also the idle timeout [300, RFC 5321 4.5.3.2.7]\n"
	      "  -x file      aliases file in /etc/aliases syntax, read again on SIGHUP [none]\n"
	      "  -E keyword   withhold this EHLO extension and refuse its use as if it were\n"
	      "               unknown, repeatable: PIPELINING, SIZE, 8BITMIME, SMTPUTF8,\n"
	      "               ENHANCEDSTATUSCODES, HELP [all offered];\n"
	      "               -E SMTPUTF8 -E 8BITMIME plays an old server\n"
	      "  -V           answer VRFY and EXPN truthfully [252: cannot verify]\n"
	      "  -v           log the whole dialogue (C: and S: lines) to stderr\n"
	      "  -h           print the options and exit\n"
	      "Signals: TERM or INT stop: no new sessions, a session waiting for a\n"
	      "command gets 421 4.3.2, one inside a transaction finishes it first;\n"
	      "HUP reads the -x file again.\n", stdout);
	exit(0);
}

/* -E KEYWORD: withhold one extension of the EHLO reply (ext_names). */
static void withhold(const char *keyword)
{
	int i;

	for (i = 0; i < NEXT; i++)
		if (strcasecmp(keyword, ext_names[i]) == 0) {
			cfg.withheld |= 1u << i;
			return;
		}
	fprintf(stderr, "smtpd: -E %s: not an extension this server offers (", keyword);
	for (i = 0; i < NEXT; i++)
		fprintf(stderr, "%s%s", i ? " " : "", ext_names[i]);
	fprintf(stderr, ")\n");
	usage();
}

/* The local domains in A-labels, for is_local_domain: -d 例子.测试 is
 * matched as xn--fsqu00a.xn--0zwm56d, whichever form a client writes. */
static void local_domains_ascii(void)
{
	int i;

	for (i = 0; i < cfg.ndomains; i++)
		if (domain_to_ascii(cfg.domains[i], cfg.domains_ascii[i], sizeof cfg.domains_ascii[i]) < 0) {
			fprintf(stderr, "smtpd: -d %s: not a domain name (UTF-8, labels of 63 octets)\n",
				cfg.domains[i]);
			usage();
		}
}

/* "10.0.0.0/8", "::1", "192.0.2.7": an address and a prefix length. */
static int parse_cidr(const char *text, struct cidr *c)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	char *end;
	long bits;

	if (n >= sizeof addr)
		return -1;
	memcpy(addr, text, n);
	addr[n] = '\0';
	memset(c, 0, sizeof *c);
	if (inet_pton(AF_INET, addr, c->addr) == 1)
		c->family = AF_INET, c->bits = 32;
	else if (inet_pton(AF_INET6, addr, c->addr) == 1)
		c->family = AF_INET6, c->bits = 128;
	else
		return -1;
	if (slash) {
		bits = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || bits < 0 || bits > c->bits)
			return -1;
		c->bits = (int)bits;
	}
	return 0;
}

static long number_option(const char *text, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || *end || end == text || v < min || v > max) {
		fprintf(stderr, "smtpd: bad number: %s\n", text);
		usage();
	}
	return v;
}

/* The aliases file, /etc/aliases syntax: "name: member, member", lines
 * starting with whitespace continue the previous entry, '#' starts a
 * comment line.  Names are matched in lower case. */
static int load_aliases(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, i;
	ssize_t n;
	struct alias *last = NULL;

	if (!f) {
		fprintf(stderr, "smtpd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		char *colon, *p;
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (line[0] == '#' || strspn(line, " \t") == (size_t)n)
			continue;
		if ((line[0] == ' ' || line[0] == '\t') && last) {   /* continuation */
			size_t old = strlen(last->members);
			if (!(p = realloc(last->members, old + (size_t)n + 2)))
				goto fail;
			snprintf(p + old, (size_t)n + 2, ",%s", line);
			last->members = p;
			continue;
		}
		if (!(colon = strchr(line, ':'))) {
			fprintf(stderr, "smtpd: %s: no ':' in \"%s\", line ignored\n", path, line);
			last = NULL;
			continue;
		}
		*colon = '\0';
		for (p = line; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		p = line + strcspn(line, " \t");
		*p = '\0';
		if (!(p = realloc(cfg.aliases, (cfg.naliases + 1) * sizeof *cfg.aliases)))
			goto fail;
		cfg.aliases = (struct alias *)p;
		last = &cfg.aliases[cfg.naliases];
		last->name = strdup(line);
		last->members = strdup(colon + 1);
		cfg.naliases++;         /* counted now: freed with the table on failure */
		if (!last->name || !last->members)
			goto fail;
	}
	if (ferror(f)) {                /* e.g. a directory: EISDIR */
		fprintf(stderr, "smtpd: %s: %s\n", path, strerror(errno));
		free(line);
		fclose(f);
		return -1;
	}
	free(line);
	fclose(f);
	for (i = 0; i < cfg.naliases; i++)
		if (cfg.verbose)
			fprintf(stderr, "smtpd: alias %s: %s\n", cfg.aliases[i].name, cfg.aliases[i].members);
	return 0;
fail:
	fprintf(stderr, "smtpd: %s: out of memory\n", path);
	free(line);
	fclose(f);
	return -1;
}

static void free_alias_table(struct alias *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].members);
	}
	free(v);
}

static void free_aliases(void)
{
	free_alias_table(cfg.aliases, cfg.naliases);
	cfg.aliases = NULL;
	cfg.naliases = 0;
}

/* mkdir -p, for the mail root and the queue. */
static int make_path(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -1;
	for (p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (make_dir(buf) < 0)
				return -1;
			*p = '/';
		}
	return make_dir(buf) < 0 ? -1 : 0;
}

/* maildir(5): '/' and ':' may not appear in the host part of a name. */
static void make_file_host(void)
{
	size_t n = 0;
	const char *h;

	for (h = cfg.hostname; *h && n + 5 < sizeof cfg.file_host; h++) {
		if (*h == '/' || *h == ':')
			n += (size_t)snprintf(cfg.file_host + n, 5, "\\%03o", (unsigned)*h);
		else
			cfg.file_host[n++] = *h;
	}
	cfg.file_host[n] = '\0';
}

static void parse_options(int argc, char **argv)
{
	int c;

	cfg.listen_addr = "127.0.0.1";
	cfg.port = "2525";
	cfg.mailroot = "./mail";
	cfg.queuedir = "./queue";
	cfg.maxsize = 10UL * 1024 * 1024;
	cfg.maxsessions = 20;
	cfg.timeout = 300;
	while ((c = getopt(argc, argv, "a:p:m:d:n:Aq:r:s:c:C:t:x:E:Vvh")) != -1) {
		switch (c) {
		case 'a': cfg.listen_addr = optarg; break;
		case 'p': number_option(optarg, 0, 65535); cfg.port = optarg; break;
		case 'm': cfg.mailroot = optarg; break;
		case 'd':
			if (cfg.ndomains >= DOMAINS_MAX - 2)
				usage();
			cfg.domains[cfg.ndomains++] = optarg;
			break;
		case 'n': snprintf(cfg.hostname, sizeof cfg.hostname, "%s", optarg); break;
		case 'A': cfg.autocreate = 1; break;
		case 'q': cfg.queuedir = optarg; break;
		case 'r':
			if (cfg.nrelay >= RELAY_MAX || parse_cidr(optarg, &cfg.relay[cfg.nrelay]) < 0) {
				fprintf(stderr, "smtpd: bad network: %s\n", optarg);
				usage();
			}
			cfg.nrelay++;
			break;
		case 's': cfg.maxsize = (unsigned long)number_option(optarg, 1, LONG_MAX); break;
		case 'c': cfg.maxsessions = (int)number_option(optarg, 1, 100000); break;
		case 'C': cfg.maxperclient = (int)number_option(optarg, 1, 100000); break;
		case 't': cfg.timeout = (int)number_option(optarg, 1, 86400); break;
		case 'x': cfg.aliases_file = optarg; break;
		case 'E': withhold(optarg); break;
		case 'V': cfg.vrfy = 1; break;
		case 'v': cfg.verbose = 1; break;
		case 'h': help(); break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (!cfg.hostname[0] && gethostname(cfg.hostname, sizeof cfg.hostname - 1) < 0)
		snprintf(cfg.hostname, sizeof cfg.hostname, "localhost");
	if (cfg.ndomains == 0) {
		cfg.domains[cfg.ndomains++] = "localhost";
		cfg.domains[cfg.ndomains++] = cfg.hostname;
	}
	local_domains_ascii();
	if (cfg.nrelay == 0) {
		parse_cidr("127.0.0.0/8", &cfg.relay[cfg.nrelay++]);
		parse_cidr("::1", &cfg.relay[cfg.nrelay++]);
	}
	make_file_host();
}

static int listen_socket(void)
{
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char port[16];
	int fd, one = 1, r;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((r = getaddrinfo(cfg.listen_addr, cfg.port, &hints, &ai)) != 0) {
		fprintf(stderr, "smtpd: %s: %s\n", cfg.listen_addr, gai_strerror(r));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		fprintf(stderr, "smtpd: listen on %s port %s: %s\n", cfg.listen_addr, cfg.port, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	getnameinfo((struct sockaddr *)&ss, len, NULL, 0, port, sizeof port, NI_NUMERICSERV);
	log_event(NULL, "listening addr=%s port=%s name=%s", cfg.listen_addr, port, cfg.hostname);
	return fd;
}

/* ---- The accept loop --------------------------------------------------------- */

static void on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGTERM || sig == SIGINT)
		stopping = 1;
	if (sig == SIGHUP)
		reloading = 1;
	if (write(wake_pipe[1], "x", 1) < 0) {
		/* the pipe is full (or not made yet): the waiter wakes anyway */
	}
	errno = saved;
}

static void set_signal(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* A pipe that does not block and is not inherited by exec. */
static int make_wake_pipe(void)
{
	int i;

	if (pipe(wake_pipe) < 0)
		return -1;
	for (i = 0; i < 2; i++) {
		fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
		fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	return 0;
}

/* Say no in one line and hang up (no fork needed). */
static void refuse(int fd, const char *text)
{
	if (write(fd, text, strlen(text)) < 0)
		log_event(NULL, "refuse-write error=\"%s\"", strerror(errno));
	close(fd);
}

/* The parent's table of its sessions: which process serves which client
 * address (for -C, and to pass a SIGTERM on).  An entry is freed when its
 * process is reaped. */
struct child { pid_t pid; int family; unsigned char addr[16]; };
struct children { struct child *v; int n; };

static void reap_children(struct children *k)
{
	pid_t pid;
	int i, status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < k->n; i++)
			if (k->v[i].pid == pid) {
				k->v[i] = k->v[--k->n];
				break;
			}
}

/* -C: sessions from this client address now. */
static int sessions_from(const struct children *k, int family, const unsigned char *addr)
{
	int i, n = 0;

	for (i = 0; i < k->n; i++)
		n += k->v[i].family == family &&
		     memcmp(k->v[i].addr, addr, family == AF_INET ? 4 : 16) == 0;
	return n;
}

/* A descriptor kept in reserve: when accept() fails with EMFILE we free
 * it, accept, answer 421 and close, so the client hears why and the
 * connection does not sit in the backlog waking poll() forever. */
static int spare_fd = -1;

static void accept_failed(int lfd)
{
	int fd;

	if (errno == EMFILE || errno == ENFILE) {
		log_event(NULL, "accept error=\"%s\" action=421", strerror(errno));
		close(spare_fd);
		if ((fd = accept(lfd, NULL, NULL)) >= 0)
			refuse(fd, "421 4.3.2 Out of file descriptors, try again later\r\n");
		spare_fd = open("/dev/null", O_RDONLY);
	} else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) {
		log_event(NULL, "accept error=\"%s\"", strerror(errno));
	}
}

/* Is there room for one more session, in all and from this client? */
static int session_allowed(int fd, const struct children *k, int family, const unsigned char *addr)
{
	char text[400], who[INET6_ADDRSTRLEN];

	if (k->n >= cfg.maxsessions) {
		log_event(NULL, "refused reason=session-limit limit=%d", cfg.maxsessions);
		snprintf(text, sizeof text, "421 4.3.2 %s Too many sessions, try again later\r\n", cfg.hostname);
		refuse(fd, text);
		return 0;
	}
	if (cfg.maxperclient > 0 && sessions_from(k, family, addr) >= cfg.maxperclient) {
		inet_ntop(family, addr, who, sizeof who);
		log_event(NULL, "refused reason=client-limit client=%s limit=%d", who, cfg.maxperclient);
		snprintf(text, sizeof text, "421 4.7.0 %s Too many connections from your address\r\n", cfg.hostname);
		refuse(fd, text);
		return 0;
	}
	return 1;
}

/* The child's side of fork(): drop what belongs to the parent, make its
 * own wake pipe (SIGTERM from the parent ends an idle session), serve. */
static void run_session(int lfd, int fd, const struct sockaddr_storage *peer, struct children *k)
{
	free(k->v);
	k->v = NULL;
	close(lfd);
	close(spare_fd);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
	if (make_wake_pipe() < 0)               /* then only -t ends an idle session */
		wake_pipe[0] = wake_pipe[1] = -1;
	set_signal(SIGCHLD, SIG_DFL);
	set_signal(SIGHUP, SIG_IGN);            /* the parent reloads; a session keeps its table */
	session(fd, peer);
	exit(0);
}

static void accept_client(int lfd, struct children *k)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof peer;
	const unsigned char *addr;
	char text[400];
	int fd = accept(lfd, (struct sockaddr *)&peer, &len), family;
	pid_t pid;

	if (fd < 0) {
		accept_failed(lfd);
		return;
	}
	family = peer_address(&peer, &addr);
	if (!session_allowed(fd, k, family, addr))
		return;
	if ((pid = fork()) < 0) {
		log_event(NULL, "fork error=\"%s\" action=421", strerror(errno));
		snprintf(text, sizeof text, "421 4.3.0 %s Cannot start a session, try again later\r\n", cfg.hostname);
		refuse(fd, text);
		return;
	}
	if (pid == 0)
		run_session(lfd, fd, &peer, k);
	k->v[k->n].pid = pid;
	k->v[k->n].family = family;
	memcpy(k->v[k->n].addr, addr, family == AF_INET ? 4 : 16);
	k->n++;
	close(fd);
}

/* SIGHUP: read the aliases file again.  New sessions get the new table;
 * running ones keep the copy they were forked with.  A file that cannot
 * be read leaves the old table in force (load_aliases logged why). */
static void reload_aliases(void)
{
	struct alias *old = cfg.aliases;
	size_t nold = cfg.naliases;

	if (!cfg.aliases_file) {
		log_event(NULL, "aliases-reload skipped=no-aliases-file");
		return;
	}
	cfg.aliases = NULL;
	cfg.naliases = 0;
	if (load_aliases(cfg.aliases_file) < 0) {
		free_alias_table(cfg.aliases, cfg.naliases);
		cfg.aliases = old;
		cfg.naliases = nold;
		log_event(NULL, "aliases-reload-failed file=%s kept=%lu", cfg.aliases_file, (unsigned long)nold);
		return;
	}
	free_alias_table(old, nold);
	log_event(NULL, "aliases-reloaded file=%s aliases=%lu", cfg.aliases_file, (unsigned long)cfg.naliases);
}

/* SIGTERM/SIGINT: stop accepting, pass the stop on to every session (an
 * idle one answers 421 and closes, one in a transaction finishes it
 * first), then reap them all. */
static void stop_sessions(int lfd, struct children *k)
{
	int i;

	close(lfd);
	log_event(NULL, "stopping sessions=%d", k->n);
	for (i = 0; i < k->n; i++)
		kill(k->v[i].pid, SIGTERM);
	while (k->n > 0) {
		pid_t pid = waitpid(-1, NULL, 0);
		if (pid < 0 && errno != EINTR)
			break;
		for (i = 0; pid > 0 && i < k->n; i++)
			if (k->v[i].pid == pid) {
				k->v[i] = k->v[--k->n];
				break;
			}
	}
}

int main(int argc, char **argv)
{
	struct children kids = { NULL, 0 };
	struct pollfd pfd[2];
	char path[PATH_MAX], drain[64];
	int lfd;

	parse_options(argc, argv);
	tzset();                        /* read the time zone once: every session inherits it */
	snprintf(path, sizeof path, "%s/tmp", cfg.queuedir);
	if (make_path(cfg.mailroot) < 0 || make_path(path) < 0 ||
	    (snprintf(path, sizeof path, "%s/entries", cfg.queuedir), make_path(path)) < 0) {
		fprintf(stderr, "smtpd: cannot create %s or %s: %s\n", cfg.mailroot, path, strerror(errno));
		return 1;
	}
	if (cfg.aliases_file && load_aliases(cfg.aliases_file) < 0)
		return 1;
	if (make_wake_pipe() < 0 || (spare_fd = open("/dev/null", O_RDONLY)) < 0 ||
	    !(kids.v = calloc((size_t)cfg.maxsessions, sizeof *kids.v))) {
		fprintf(stderr, "smtpd: %s\n", strerror(errno));
		return 1;
	}
	set_signal(SIGPIPE, SIG_IGN);   /* a vanished client is a write error, not death */
#ifdef SIGXFSZ
	set_signal(SIGXFSZ, SIG_IGN);   /* a file-size limit is EFBIG: 452, not death */
#endif
	set_signal(SIGCHLD, on_signal);
	set_signal(SIGTERM, on_signal);
	set_signal(SIGINT, on_signal);
	set_signal(SIGHUP, on_signal);
	if ((lfd = listen_socket()) < 0)
		return 1;

	pfd[0].fd = lfd;
	pfd[1].fd = wake_pipe[0];
	pfd[0].events = pfd[1].events = POLLIN;
	while (!stopping) {
		reap_children(&kids);
		if (reloading) {
			reloading = 0;
			reload_aliases();
		}
		if (poll(pfd, 2, -1) < 0) {
			if (errno != EINTR)
				log_event(NULL, "poll error=\"%s\"", strerror(errno));
			continue;
		}
		if (pfd[1].revents & POLLIN)
			while (read(wake_pipe[0], drain, sizeof drain) > 0)
				;
		if (!stopping && (pfd[0].revents & POLLIN))
			accept_client(lfd, &kids);
	}
	stop_sessions(lfd, &kids);
	free(kids.v);
	free_aliases();
	log_event(NULL, "stopped");
	return 0;
}

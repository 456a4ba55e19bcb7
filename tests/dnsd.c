/*
 * dnsd.c - a tiny DNS responder for the tests (not part of the MTA)
 *
 *   dnsd [-a addr] [-p port] zone-file
 *
 * Answers A, AAAA, MX and CNAME questions over UDP and TCP from a zone
 * file written by the test, on a loopback address.  -p 0 takes a free
 * port; the port is logged ("dnsd: listening addr=... port=N").  Every
 * query is logged as one line on stderr.
 *
 * Zone file: one record per line, "#" comments.
 *   example.org      MX     10 mx1.example.org
 *   nomail.org       MX     0 .                 (a null MX)
 *   mx1.example.org  A      127.0.0.2
 *   mx1.example.org  AAAA   ::1
 *   www.example.org  CNAME  example.org
 * and behaviours that hold for every question about a name:
 *   broken.org  SERVFAIL     rcode 2
 *   big.org     TRUNCATE     over UDP only the TC bit; over TCP the records
 *   bad.org     MALFORMED ptrloop|counts|cutoff    a broken answer
 *   end.org     MALFORMED ptrend   over UDP only the TC bit; over TCP an
 *               answer whose last byte is the first half of a compression
 *               pointer (a reader that takes the second half reads one
 *               byte past the message)
 *   slow.org    DROP         no answer at all
 *   spoof.org   WRONGID      an answer with the wrong id, and nothing else
 *   side.org    WRONGPORT    the right answer, but sent from another port
 *   other.org   WRONGQUESTION  an empty answer to a question with another
 *               name (its first letter changed): not an answer to ours
 *   nil.org     TCPEMPTY     over UDP only the TC bit; over TCP a length of 0
 * Names may hold "\DDD" (a byte in decimal) and "\." as in zone files,
 * to serve names with odd bytes: bad\001name.example.org.
 * A name not in the file gets NXDOMAIN; a known name without records of
 * the asked type gets an empty answer (NODATA).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { T_A = 1, T_CNAME = 5, T_MX = 15, T_AAAA = 28 };
enum { B_NONE, B_SERVFAIL, B_TRUNCATE, B_MALFORMED, B_DROP, B_WRONGID, B_WRONGPORT, B_WRONGQUESTION,
       B_TCPEMPTY };

static int from_other_port;     /* set by answer() for B_WRONGPORT */

struct record {
	char name[256];
	int type, behaviour;            /* type 0: a behaviour line */
	unsigned pref;
	char target[256], how[32];
	unsigned char addr[16];
};

static struct record zone[512];
static int nzone;

static int load_zone(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024], name[256], type[32], a[256], b[256];

	if (!f) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof line, f) && nzone < 512) {
		struct record *r = &zone[nzone];
		int n;
		if (line[0] == '#' || (n = sscanf(line, "%255s %31s %255s %255s", name, type, a, b)) < 2)
			continue;
		memset(r, 0, sizeof *r);
		snprintf(r->name, sizeof r->name, "%s", name);
		if (!strcasecmp(type, "A") && n >= 3 && inet_pton(AF_INET, a, r->addr) == 1)
			r->type = T_A;
		else if (!strcasecmp(type, "AAAA") && n >= 3 && inet_pton(AF_INET6, a, r->addr) == 1)
			r->type = T_AAAA;
		else if (!strcasecmp(type, "MX") && n == 4) {
			r->type = T_MX;
			r->pref = (unsigned)atoi(a);
			snprintf(r->target, sizeof r->target, "%s", strcmp(b, ".") ? b : "");
		} else if (!strcasecmp(type, "CNAME") && n >= 3) {
			r->type = T_CNAME;
			snprintf(r->target, sizeof r->target, "%s", a);
		} else if (!strcasecmp(type, "SERVFAIL")) r->behaviour = B_SERVFAIL;
		else if (!strcasecmp(type, "TRUNCATE")) r->behaviour = B_TRUNCATE;
		else if (!strcasecmp(type, "DROP")) r->behaviour = B_DROP;
		else if (!strcasecmp(type, "WRONGID")) r->behaviour = B_WRONGID;
		else if (!strcasecmp(type, "WRONGPORT")) r->behaviour = B_WRONGPORT;
		else if (!strcasecmp(type, "WRONGQUESTION")) r->behaviour = B_WRONGQUESTION;
		else if (!strcasecmp(type, "TCPEMPTY")) r->behaviour = B_TCPEMPTY;
		else if (!strcasecmp(type, "MALFORMED") && n >= 3) {
			r->behaviour = B_MALFORMED;
			snprintf(r->how, sizeof r->how, "%.31s", a);
		} else {
			fprintf(stderr, "dnsd: %s: bad line: %s", path, line);
			continue;
		}
		nzone++;
	}
	fclose(f);
	return 0;
}

/* A name as labels; "\DDD" (a decimal byte) and "\X" (X itself, "\." a
 * dot inside a label) as in zone files, RFC 1035 5.1: for odd names. */
static size_t put_name(unsigned char *m, size_t off, const char *name)
{
	while (*name) {
		size_t len_at = off++, n = 0;
		while (*name && *name != '.' && n < 63) {
			if (name[0] == '\\' && isdigit((unsigned char)name[1]) && isdigit((unsigned char)name[2]) &&
			    isdigit((unsigned char)name[3])) {
				m[off++] = (unsigned char)atoi((char[]){ name[1], name[2], name[3], 0 });
				name += 4;
			} else {
				if (name[0] == '\\' && name[1])
					name++;
				m[off++] = (unsigned char)*name++;
			}
			n++;
		}
		m[len_at] = (unsigned char)n;
		if (*name == '.')
			name++;
	}
	m[off++] = 0;
	return off;
}

static size_t put16(unsigned char *m, size_t off, unsigned v)
{
	m[off] = (unsigned char)(v >> 8);
	m[off + 1] = (unsigned char)v;
	return off + 2;
}

/* Build the answer to query q (qlen bytes) into m; returns its length,
 * 0 for "no answer". */
static size_t answer(const unsigned char *q, size_t qlen, unsigned char *m, int tcp, const char *peer)
{
	char name[256];
	size_t off = 12, n = 0, qend, rdl;
	unsigned type, count = 0;
	int i, known = 0, behaviour = B_NONE;
	const char *how = "";

	if (qlen < 17)
		return 0;
	while (off < qlen && q[off] && n < 250) {       /* the question name */
		unsigned len = q[off];
		if (len > 63 || off + 1 + len > qlen)
			return 0;
		if (n)
			name[n++] = '.';
		memcpy(name + n, q + off + 1, len);
		n += len;
		off += 1 + len;
	}
	name[n] = '\0';
	if (off + 5 > qlen)
		return 0;
	type = (unsigned)q[off + 1] << 8 | q[off + 2];
	qend = off + 5;
	for (i = 0; i < nzone; i++)
		if (!strcasecmp(zone[i].name, name)) {
			known = 1;
			if (zone[i].behaviour) {
				behaviour = zone[i].behaviour;
				how = zone[i].how;
			}
		}
	memcpy(m, q, qend);                             /* id, flags, question */
	m[2] = (unsigned char)(0x84 | (q[2] & 0x01));   /* QR, AA, RD copied */
	m[3] = 0x80;                                    /* RA */
	memset(m + 6, 0, 6);
	off = qend;
	if (behaviour == B_DROP) {
		fprintf(stderr, "dnsd: query %s %u %s from %s -> dropped\n", name, type, tcp ? "tcp" : "udp", peer);
		return 0;
	}
	from_other_port = (behaviour == B_WRONGPORT);
	if (behaviour == B_WRONGID) {
		m[0] ^= 0x5a;
	} else if (behaviour == B_SERVFAIL) {
		m[3] |= 2;
	} else if ((behaviour == B_TRUNCATE || behaviour == B_TCPEMPTY ||
		    (behaviour == B_MALFORMED && !strcmp(how, "ptrend"))) && !tcp) {
		m[2] |= 0x02;                           /* TC: ask again over TCP */
	} else if (behaviour == B_TCPEMPTY) {
		fprintf(stderr, "dnsd: query %s %u tcp from %s -> an empty answer\n", name, type, peer);
		return (size_t)-1;                      /* serve_tcp: length 0 */
	} else if (behaviour == B_MALFORMED && !strcmp(how, "ptrend")) {
		m[off++] = 0xC0;                        /* owner name: half a pointer, then the end */
		m[7] = 1;
	} else if (behaviour == B_WRONGQUESTION) {
		m[13] = (unsigned char)(m[13] == 'x' ? 'y' : 'x');   /* the first letter */
	} else if (!known || behaviour == B_WRONGPORT) {
		m[3] |= (unsigned char)(known ? 0 : 3); /* NXDOMAIN, or an empty answer */
	} else if (behaviour == B_MALFORMED) {
		off = put16(m, off, 0xC00C);            /* owner: the question name */
		off = put16(m, off, T_MX);
		off = put16(m, off, 1);
		off = put16(m, off, 0);
		off = put16(m, off, 300);
		if (!strcmp(how, "ptrloop")) {          /* an exchange that points at itself */
			off = put16(m, off, 4);
			off = put16(m, off, 10);
			off = put16(m, off, 0xC000 | (unsigned)off);
			m[7] = 1;
		} else if (!strcmp(how, "counts")) {    /* says 5 answers, has 1 */
			off = put16(m, off, 2 + 2);
			off = put16(m, off, 10);
			off = put16(m, off, 0xC00C);
			m[7] = 5;
		} else {                                /* cutoff: rdlength past the end */
			off = put16(m, off, 100);
			off = put16(m, off, 10);
			m[7] = 1;
		}
	} else {
		for (i = 0; i < nzone; i++) {
			struct record *r = &zone[i];
			if (strcasecmp(r->name, name) || !r->type || (r->type != (int)type && r->type != T_CNAME))
				continue;
			off = put_name(m, off, r->name);
			off = put16(m, off, (unsigned)r->type);
			off = put16(m, off, 1);
			off = put16(m, off, 0);
			off = put16(m, off, 300);
			rdl = off;
			off += 2;
			if (r->type == T_A) {
				memcpy(m + off, r->addr, 4);
				off += 4;
			} else if (r->type == T_AAAA) {
				memcpy(m + off, r->addr, 16);
				off += 16;
			} else if (r->type == T_MX) {
				off = put16(m, off, r->pref);
				off = put_name(m, off, r->target);
			} else {
				off = put_name(m, off, r->target);
			}
			put16(m, rdl, (unsigned)(off - rdl - 2));
			count++;
			if (off > 60000)
				break;
		}
		put16(m, 6, count);
	}
	fprintf(stderr, "dnsd: query %s %u %s from %s -> rcode %u, %u answers%s\n", name, type,
		tcp ? "tcp" : "udp", peer, m[3] & 15u, count, (m[2] & 0x02) ? ", truncated" : "");
	return off;
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char host[64] = "?", port[16] = "?";
	getnameinfo((const struct sockaddr *)ss, sizeof *ss, host, sizeof host, port, sizeof port,
		    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, size, "%s:%s", host, port);
}

/* One TCP query: two-byte length, message; the same back (RFC 1035 4.2.2). */
static void serve_tcp(int lfd)
{
	static unsigned char q[65536], m[65600];
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char peer[100];
	int fd = accept(lfd, (struct sockaddr *)&ss, &len);
	size_t want = 2, have = 0, n;

	if (fd < 0)
		return;
	peer_text(&ss, peer, sizeof peer);
	while (have < want) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;
		if (poll(&p, 1, 2000) <= 0 || (r = read(fd, q + have, want - have)) <= 0)
			break;
		have += (size_t)r;
		if (have == 2 && want == 2)
			want = 2 + ((size_t)q[0] << 8 | q[1]);
	}
	if (have == want && want > 2 && (n = answer(q + 2, want - 2, m + 2, 1, peer)) > 0) {
		if (n == (size_t)-1)
			n = 0;                          /* TCPEMPTY: a length of 0 */
		put16(m, 0, (unsigned)n);
		if (write(fd, m, n + 2) < 0)
			perror("dnsd: write");
	}
	close(fd);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *port = "53";
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct pollfd pfd[2];
	char bound[16];
	int c, one = 1, other, tries;

	while ((c = getopt(argc, argv, "a:p:")) != -1) {
		if (c == 'a') addr = optarg;
		else if (c == 'p') port = optarg;
		else return 2;
	}
	if (argc - optind != 1 || load_zone(argv[optind]) < 0) {
		fprintf(stderr, "usage: dnsd [-a addr] [-p port] zone-file\n");
		return 2;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(addr, port, &hints, &ai) != 0)
		return 2;
	/* UDP, then TCP on the same port number.  With -p 0 the kernel picks
	 * a UDP port whose TCP twin may be taken by another test run: then
	 * try again with another port (at most 100 times). */
	for (tries = 0;; tries++) {
		len = sizeof ss;
		pfd[0].fd = socket(ai->ai_family, SOCK_DGRAM, 0);
		if (pfd[0].fd < 0 || bind(pfd[0].fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    getsockname(pfd[0].fd, (struct sockaddr *)&ss, &len) < 0) {
			perror("dnsd: udp");
			return 1;
		}
		pfd[1].fd = socket(ai->ai_family, SOCK_STREAM, 0);
		setsockopt(pfd[1].fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (pfd[1].fd >= 0 && bind(pfd[1].fd, (struct sockaddr *)&ss, len) == 0 && listen(pfd[1].fd, 16) == 0)
			break;
		if (errno != EADDRINUSE || strcmp(port, "0") != 0 || tries >= 100) {
			perror("dnsd: tcp");
			return 1;
		}
		close(pfd[0].fd);
		close(pfd[1].fd);
	}
	getnameinfo((struct sockaddr *)&ss, len, NULL, 0, bound, sizeof bound, NI_NUMERICSERV);
	other = socket(ai->ai_family, SOCK_DGRAM, 0);  /* for WRONGPORT: any other port */
	freeaddrinfo(ai);
	fprintf(stderr, "dnsd: listening addr=%s port=%s records=%d\n", addr, bound, nzone);
	pfd[0].events = pfd[1].events = POLLIN;
	for (;;) {
		static unsigned char q[4096], m[65600];
		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[1].revents & POLLIN)
			serve_tcp(pfd[1].fd);
		if (pfd[0].revents & POLLIN) {
			struct sockaddr_storage from;
			socklen_t flen = sizeof from;
			char peer[100];
			ssize_t n = recvfrom(pfd[0].fd, q, sizeof q, 0, (struct sockaddr *)&from, &flen);
			size_t alen;
			if (n <= 0)
				continue;
			peer_text(&from, peer, sizeof peer);
			if ((alen = answer(q, (size_t)n, m, 0, peer)) > 0)
				sendto(from_other_port ? other : pfd[0].fd, m, alen, 0, (struct sockaddr *)&from, flen);
		}
	}
}

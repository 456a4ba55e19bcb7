# shellcheck shell=bash
# tests/groups/citations.sh, sourced by test.sh
# RFC citations: every "RFC NNNN x.y" in smtpd.c, smtp_send.c, NOTES.md,
# README.md and lab/ names a section that exists (tests/citations.sh
# against tests/rfc-sections.tsv, the sections as the RFCs number them)
# Groups: citations_selftest citations
TEST_GROUPS+=(citations_selftest citations)

# citations DIR ARGS...: tests/citations.sh run inside DIR; prints its
# output, then "rc=N".
citations() {
	local dir=$1; shift
	(cd "$dir" && "$TOP/tests/citations.sh" "$@" 2>&1; echo "rc=$?")
}

t_citations_selftest() {
	local d=$T/citations
	mkdir -p "$d"
	# Every form of the grammar, each naming sections that exist.
	cat >"$d/good.c" <<'EOF'
/* RFC 5321 4.5.3.1.4: command line */
/* RFC 5321 section 4.1.2 and RFC 5321 Section 4.1.3 */
(RFC 5321, 4.1.2) (RFC 5321, section 4.1.3)
RFC 5321 3.6.2 and 7.9; RFC 5321 4.1.4 or 4.2.4
RFC 5321 4.1.1.4 (and 3.3) allows either
RFC 1870 4 / 6.3, RFC 5321 2.3.8, 2.4, and 4.5.2
RFC 6409 8.1-8.3, RFC 6409 8.1–8.3
RFC 5321 4.1.4 and Appendix F.1 / F.6; RFC 5321 Appendix F
RFC 5321 §4.4, RFC 5321 § 4.4
RFC 5322 alone, (RFC 2920), RFC 821.
the end of a sentence: RFC 5321 4.1.4.
 * a citation that wraps, RFC
 * 5321 4.5.3.2.7, and a list that wraps: RFC 5321 3.1 and
 * 4.2
NOTES 的中文: RFC 5321 4.1.4），RFC 5321 5.1）。
EOF
	check "citations: every form of the grammar, all sections real: quiet, exit 0" "rc=0" \
		"$(citations "$d" good.c)"

	# The same forms, each with one section that is not in its RFC (or an
	# RFC not in the table): each is found, on its own line, in order.
	cat >"$d/bad.c" <<'EOF'
/* RFC 5321 4.5.3.1.11: too big */
/* RFC 5321 section 4.1.9 */
(RFC 5321, 4.9)
RFC 5321 3.6.2 and 7.10
RFC 5321 4.1.1.4 (and 3.10) allows either
RFC 1870 4 / 6.5
RFC 6409 8.1-8.9
RFC 5321 Appendix F.1 / F.7; RFC 5321 Appendix G
RFC 5321 §4.6
RFC 9999 and RFC 9999 1.2
 * a citation that wraps, RFC
 * 5321 4.1.6
the end of a sentence: RFC 5321 4.1.6.
a status code is no section: RFC 3463 5.7.1
EOF
	check "citations: a bad section in each form is reported as FILE:LINE, exit 1" \
		"bad.c:1: RFC 5321 4.5.3.1.11: no such section
bad.c:2: RFC 5321 4.1.9: no such section
bad.c:3: RFC 5321 4.9: no such section
bad.c:4: RFC 5321 7.10: no such section
bad.c:5: RFC 5321 3.10: no such section
bad.c:6: RFC 1870 6.5: no such section
bad.c:7: RFC 6409 8.9: no such section
bad.c:8: RFC 5321 Appendix F.7: no such section
bad.c:8: RFC 5321 Appendix G: no such section
bad.c:9: RFC 5321 4.6: no such section
bad.c:10: RFC 9999 is not in tests/rfc-sections.tsv
bad.c:10: RFC 9999 is not in tests/rfc-sections.tsv
bad.c:11: RFC 5321 4.1.6: no such section
bad.c:13: RFC 5321 4.1.6: no such section
bad.c:14: RFC 3463 5.7.1: no such section
rc=1" "$(citations "$d" bad.c)"

	# Prose that is not a citation of a section stays quiet: a number
	# after a word, a three-digit number, a section without its RFC, and
	# spellings that are not "RFC NNNN".
	cat >"$d/prose.md" <<'EOF'
RFC 5321 says 4.9.9 things; RFC 5321 512 octets; RFC 5322 2008
(see 4.9.9), RFCs 5321 and 9999, rfc9999, RFC-9999, XRFC 9999
RFC 5321 4.1.123 is no section number at all
EOF
	check "citations: prose that only looks like a citation is not one" "rc=0" \
		"$(citations "$d" prose.md)"

	check "citations -l: each citation with the title the table gives it" \
		"good.c:5: RFC 5321 4.1.1.4: DATA (DATA)
good.c:5: RFC 5321 3.3: Mail Transactions
good.c:13: RFC 5321 3.1: Session Initiation
good.c:13: RFC 5321 4.2: SMTP Replies
rc=0" "$(citations "$d" -l good.c | grep -E '^good\.c:(5|13):|^rc=')"

	# The table is checked too: a malformed row, a repeated row and a
	# subsection without its parent are errors (exit 2), not silence.
	printf '5321\t4\tThe SMTP Specifications\n5321\t4.1\tSMTP Commands\n5321\t4.1\tSMTP Commands\n5321\t4.1.1.1\tExtended HELLO (EHLO) or HELLO (HELO)\n5321\t4.x\tnot a section\n' >"$d/table.tsv"
	check "citations: a malformed, repeated or orphaned table row fails the check" \
		"table.tsv:3: RFC 5321 4.1 is listed twice
table.tsv:5: malformed row (RFC<TAB>section<TAB>title)
table.tsv:4: RFC 5321 4.1.1.1: its parent section 4.1.1 is not listed
rc=2" "$(citations "$d" -t table.tsv good.c)"
}

# The real files.  Until every citation is fixed (issue 14) this group
# lists what is wrong; "citations" alone runs just these.
t_citations() {
	check "every RFC citation in smtpd.c, smtp_send.c, NOTES.md, README.md and lab/ names a section that exists" \
		"rc=0" "$(citations "$TOP")"
}

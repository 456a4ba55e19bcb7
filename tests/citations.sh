#!/bin/sh
# tests/citations.sh - every RFC citation names a section that exists.
#
#   tests/citations.sh [-l] [-t TABLE] [FILE...]
#
# Reads the citations ("RFC 5321 4.5.3.1.4") in FILEs (default: smtpd.c,
# smtp_send.c, NOTES.md, README.md and lab/*) and looks each one up in
# TABLE (default tests/rfc-sections.tsv: RFC <TAB> section <TAB> title,
# taken from the RFCs themselves).  For each citation that is not there
# it prints one line and the exit status is 1:
#
#   FILE:LINE: RFC NNNN x.y: no such section
#   FILE:LINE: RFC NNNN is not in tests/rfc-sections.tsv
#
# Exit 0 when every citation is known, 2 for a usage error or a table row
# that is malformed, repeated, or whose parent section is missing.
# -l lists every citation found with the title the table gives it, to
# check by eye that a section says what the comment claims (the table
# knows which sections exist, not what they mean).
#
# A section or RFC missing from the table is added after reading the RFC,
# never to make this script quiet: see the head of the table.
#
# THE GRAMMAR (what counts as a citation, read left to right)
#
#   citation = "RFC" *WSP rfc-number [ first-sep item *( next-sep item ) ]
#   rfc-number = 1*DIGIT          ; "RFC" must not follow a letter or digit,
#                                 ; the number must not run into a letter
#   first-sep = 1*WSP [ keyword ] / *WSP "," *WSP [ keyword ]
#   next-sep  = *WSP ( "," / "/" ) *WSP [ ( "and" / "or" ) 1*WSP ] [ keyword ]
#             / 1*WSP ( "and" / "or" ) 1*WSP [ keyword ]
#             / *WSP "(" ( "and" / "or" / "see" / "also" ) 1*WSP [ keyword ]
#   keyword   = ( "section" / "sections" / "Section" / "Sections" ) 1*WSP
#             / "§" *WSP / ( "Appendix" / "appendix" ) 1*WSP
#   item      = ref [ ( "-" / "–" ) ref ]   ; a range: both ends must exist
#   ref       = number / appendix
#   number    = 1*2DIGIT *( "." 1*2DIGIT )  ; 4.5.3.1.10, or a bare "4"
#   appendix  = ALPHA 1*( "." 1*2DIGIT )    ; F.6
#             / ALPHA *( "." 1*2DIGIT )     ; F, only after "Appendix"
#
# and a ref must end at something other than a letter, a digit, "_" or a
# "." followed by a digit (so "RFC 5321 4.1.4." ends a sentence, and
# "RFC 5321 4.1.123" is no citation of a section at all).  Examples:
#   RFC 5321 4.5.3.1.4   RFC 5321 section 4.1.2   RFC 5321, 4.1.2
#   RFC 5321 3.6.2 and 7.9   RFC 5321 4.1.1.4 (and 3.3)   RFC 1870 4 / 6.3
#   RFC 6409 8.1-8.3   RFC 5321 Appendix F.1 / F.6   RFC 5321 §4.4
#   RFC 5322  (the RFC alone: it must be in the table)
#
# What is deliberately NOT read as a section, to be exact rather than clever:
#   - a number of three or more digits after the RFC number ("RFC 5321
#     512 octets", "RFC 5322 2008"): no section has one, so it is prose;
#   - anything after a word that is not a keyword above ("RFC 5321 says
#     4.5.3"): only the forms above are citations;
#   - section numbers written without their RFC ("(see 4.5.2)"): the
#     script cannot know which RFC is meant, so write the RFC number;
#   - "RFCs 5321 and 5322", "rfc5321", "RFC-5321": write "RFC 5321".
# A status code written right after RFC 3463 ("RFC 3463 5.7.1") reads as a
# section and fails: write "RFC 3463 3.8 (5.7.1)" or "X.7.1" instead.
# A citation may wrap: when "RFC" stands on a line, the next line (less its
# comment leader " * ", "# " or "//") is read as its continuation.
set -u
top=$(cd "$(dirname "$0")/.." && pwd) || exit 2
table=$top/tests/rfc-sections.tsv
list=0
while getopts lt: opt; do
	case $opt in
	l) list=1 ;;
	t) table=$OPTARG ;;
	*) echo "usage: $0 [-l] [-t table] [file...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
	cd "$top" || exit 2
	set -- smtpd.c smtp_send.c NOTES.md README.md
	for f in lab/*; do      # files only: lab/run/ is a running lab's state
		[ -f "$f" ] && set -- "$@" "$f"
	done
fi
[ -r "$table" ] || { echo "$0: cannot read $table" >&2; exit 2; }
for f in "$@"; do
	[ -r "$f" ] || { echo "$0: cannot read $f" >&2; exit 2; }
done

# Bytes, not characters: "§" and "–" are matched as their UTF-8 bytes.
LC_ALL=C exec awk -v table="$table" -v list="$list" '
function fail(msg) { print msg; bad = 1 }

# ---- the table ----------------------------------------------------------
function load_table(   line, n, f, key, parent) {
	n = 0
	while ((getline line < table) > 0) {
		n++
		if (line ~ /^#/ || line == "") continue
		if (split(line, f, "\t") != 3 || f[1] !~ /^[1-9][0-9]*$/ ||
		    (f[2] !~ /^[1-9][0-9]*(\.[1-9][0-9]*)*$/ && f[2] !~ /^[A-Z](\.[1-9][0-9]*)*$/) ||
		    f[3] !~ /[^ ]/ || f[3] ~ /^ | $/) {
			print table ":" n ": malformed row (RFC<TAB>section<TAB>title)"
			tablebad = 1
			continue
		}
		key = f[1] " " f[2]
		if (key in title) {
			print table ":" n ": RFC " f[1] " " f[2] " is listed twice"
			tablebad = 1
		}
		title[key] = f[3]
		rfc[f[1]] = 1
		row[key] = n
	}
	if (n == 0) { print table ": empty or unreadable"; tablebad = 1 }
	close(table)
	# every x.y.z needs its x.y: catches a row copied with a typo
	for (key in title) {
		parent = key
		if (sub(/\.[0-9]+$/, "", parent) && !(parent in title)) {
			print table ":" row[key] ": RFC " key ": its parent section " \
			    substr(parent, index(parent, " ") + 1) " is not listed"
			tablebad = 1
		}
	}
}

# ---- one citation -------------------------------------------------------
# Sets REF and REFLEN to the ref at the start of s, or returns 0.
# Without the "Appendix" keyword a bare letter is not a ref ("RFC 5321 A").
function ref_at(s, appendix,   ok) {
	ok = match(s, /^[0-9][0-9]?(\.[0-9][0-9]?)*/)
	if (!ok) ok = match(s, /^[A-Z](\.[0-9][0-9]?)+/)
	if (!ok && appendix) ok = match(s, /^[A-Z](\.[0-9][0-9]?)*/)
	if (!ok) return 0
	# it must end here: not in a longer word or number
	if (substr(s, RLENGTH + 1, 1) ~ /[A-Za-z0-9_]/) return 0
	if (substr(s, RLENGTH + 1, 2) ~ /^\.[0-9]/) return 0
	REF = substr(s, 1, RLENGTH)
	REFLEN = RLENGTH
	return 1
}

# Sets KW (1 if the keyword was Appendix) and KWLEN for a keyword at s.
function keyword_at(s) {
	KW = 0
	KWLEN = 0
	if (match(s, /^([Ss]ections?[ \t]+|§[ \t]*)/)) KWLEN = RLENGTH
	else if (match(s, /^[Aa]ppendix[ \t]+/)) { KWLEN = RLENGTH; KW = 1 }
}

function name(r, ref) { return "RFC " r " " (ref ~ /^[A-Z]/ ? "Appendix " : "") ref }

function check(file, n, r, ref) {
	if (list) {
		print file ":" n ": " name(r, ref) ": " \
		    ((r " " ref) in title ? title[r " " ref] : "(not in the table)")
		return
	}
	if (!((r " " ref) in title)) fail(file ":" n ": " name(r, ref) ": no such section")
}

# Reads the refs that follow an RFC number at s[p]; returns the position
# after the last one.  The RFC itself is known (checked by the caller).
function sections(file, n, r, s, p,   rest, first, end, lo, dash) {
	first = 1
	NREFS = 0
	while (1) {
		rest = substr(s, p)
		if (first) {
			if (!match(rest, /^([ \t]+|[ \t]*,[ \t]*)/)) return p
		} else if (!match(rest, /^([ \t]*[,\/][ \t]*((and|or)[ \t]+)?|[ \t]+(and|or)[ \t]+|[ \t]*\((and|or|see|also)[ \t]+)/))
			return p
		end = RLENGTH
		keyword_at(substr(rest, end + 1))
		end += KWLEN
		if (!ref_at(substr(rest, end + 1), KW)) return p
		lo = REF
		end += REFLEN
		check(file, n, r, lo)
		# a range "8.1-8.3" (or with an en dash): both ends must exist
		if (match(substr(rest, end + 1), /^(-|–)/)) {
			dash = RLENGTH
			if (ref_at(substr(rest, end + 1 + dash), lo ~ /^[A-Z]/)) {
				end += dash + REFLEN
				check(file, n, r, REF)
			}
		}
		p += end
		first = 0
		NREFS++
	}
}

# Scans s for citations whose "RFC" starts within the first len bytes.
function scan(file, n, s, len,   p, rest, at, r, after) {
	p = 1
	while (p <= len) {
		rest = substr(s, p)
		if (!match(rest, /RFC[ \t]*[0-9]+/)) return
		at = p + RSTART - 1
		if (at > len) return
		after = at + RLENGTH
		p = after
		if (at > 1 && substr(s, at - 1, 1) ~ /[A-Za-z0-9_]/) continue
		if (substr(s, after, 1) ~ /[A-Za-z_]/) continue
		r = substr(s, at, RLENGTH)
		sub(/^RFC[ \t]*0*/, "", r)
		if (!(r in rfc)) {
			if (list) print file ":" n ": RFC " r ": (not in the table)"
			else fail(file ":" n ": RFC " r " is not in " tablename)
			continue
		}
		p = sections(file, n, r, s, after)
		if (list && NREFS == 0) print file ":" n ": RFC " r ": (the RFC as a whole)"
	}
}

# The next line as a continuation: its comment leader dropped.
function continuation(line) {
	sub(/^[ \t]*(\*|#|\/\/)?[ \t]*/, "", line)
	return line
}

BEGIN {
	tablename = table
	sub(/^.*\/tests\//, "tests/", tablename)
	load_table()
	if (tablebad) exit 2
	for (i = 1; i < ARGC; i++) {
		file = ARGV[i]
		nl = 0
		while ((getline line < file) > 0) text[++nl] = line
		close(file)
		for (n = 1; n <= nl; n++) {
			s = text[n]
			if (n < nl) s = s " " continuation(text[n + 1])
			scan(file, n, s, length(text[n]))
		}
	}
	exit bad
}' "$@"

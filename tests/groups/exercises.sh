# shellcheck shell=bash
# tests/groups/exercises.sh, sourced by test.sh
# NOTES.md Part 6: every exercise runs (lab/exercise.sh N) with the
# commands NOTES prints, on a private lab, and its *Correct:* claims hold.
# Groups: exercises exercise_checker
TEST_GROUPS+=(exercises exercise_checker)

t_exercises() {
	local n out rc list
	list=$(./lab/exercise.sh -l)
	check "NOTES.md Part 6 has exercises 1 to 18" "$(seq 18 | tr '\n' ' ')" "$(echo "$list" | tr '\n' ' ')"
	for n in $list; do
		out=$(TMPDIR=$T ./lab/exercise.sh "$n" 2>&1); rc=$?
		if [ "$rc" = 77 ]; then skip "exercise $n: ${out#*: skipped: }"
		elif [ "$rc" = 0 ] && [ "$out" = "exercise $n: ok" ]; then ok "exercise $n: its Correct: claims hold"
		else not_ok "exercise $n: its Correct: claims hold" "$out"; fi
	done
	check "exercises leave no process running" "0" "$(procs_in "$T")"
}

# The checker is not vacuous: a claim that the programs contradict fails,
# and so does a claim that was dropped from NOTES.
t_exercise_checker() {
	local out
	sed 's/`554 5.5.1 No valid recipients`/`503 5.5.1 No valid recipients`/' NOTES.md >"$T/notes-wrong.md"
	out=$(NOTES=$T/notes-wrong.md TMPDIR=$T ./lab/exercise.sh 2 2>&1 | head -n 2)
	check "exercise checker: a wrong reply in a claim is caught" \
		"exercise 2: bullet 3: \`503 5.5.1 No valid recipients\` not found (in order)
exercise 2: 1 claim(s) did not hold; the commands and what they printed:" "$out"
	# drop exercise 4's first claim bullet, whatever it says
	awk '/^### Exercise 4\./ { on = 1 } on && /^\*Correct:\*/ { c = 1 }
	     on && c && /^- / { on = 0; next } { print }' NOTES.md >"$T/notes-short.md"
	check "exercise checker: the shortened NOTES lost one line" "1" \
		"$(( $(wc -l <NOTES.md) - $(wc -l <"$T/notes-short.md") ))"
	out=$(NOTES=$T/notes-short.md TMPDIR=$T ./lab/exercise.sh 4 2>&1 | head -n 1)
	check "exercise checker: a claim missing from NOTES is caught" \
		"exercise 4: NOTES has 1 claims in *Correct:*, the check knows 2" "$out"
}

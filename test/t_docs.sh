# shellcheck shell=bash
# The man page, --help, the bash completion and the README's exit codes say
# the same thing: each of them is checked against the binary and errmsg.h.

# every long option a verb's --help lists, less argp's own
help_options() { # verb
	"$TOP/sockbypass" "$1" --help | grep -oE -- '--[a-z][a-z-]+' |
		grep -vxE -- '--(usage|version|help)' | sort -u
}

# no-root: test_man_page_renders_and_lists_every_option
test_man_page_renders_and_lists_every_option() {
	local verb opt warnings missing=()
	warnings=$(groff -man -ww -z "$TOP/sockbypass.8" 2>&1)
	[ -z "$warnings" ] || fail "groff warnings: $warnings"
	LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$TOP/sockbypass.8" >"$TMP/man.txt" 2>"$TMP/man.err" ||
		fail "man -l: $(cat "$TMP/man.err")"
	for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" FILES EXAMPLES BUGS "SEE ALSO"; do
		grep -qx "$section" "$TMP/man.txt" || fail "the man page has no $section section"
	done
	for verb in load unload status features scope portmap; do
		grep -qE "^ +sockbypass +$verb" "$TMP/man.txt" || missing+=("synopsis of $verb")
		for opt in $(help_options "$verb"); do
			sed -n '/^OPTIONS/,/^EXIT STATUS/p' "$TMP/man.txt" | grep -q -- "$opt" ||
				missing+=("$verb $opt")
		done
	done
	[ ${#missing[@]} -eq 0 ] || fail "not in the man page: ${missing[*]}"
}

# no-root: test_exit_codes_listed_everywhere
test_exit_codes_listed_everywhere() {
	local code codes missing=()
	# the loader's, then the scripts' and the proxy's (errmsg.h names them in comments)
	codes=$(sed -n 's/.*SB_EXIT_[A-Z_]* = \([0-9]*\),.*/\1/p; s|.*/\* \([0-9]*\) and \([0-9]*\) are .*|\1 \2|p; s|.*/\* \([0-9]*\) is .*|\1|p' \
		"$TOP/errmsg.h" | tr ' ' '\n' | sort -n | tr '\n' ' ')
	[ "$(wc -w <<<"$codes")" -ge 19 ] || fail "read only these codes from errmsg.h: $codes"
	LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$TOP/sockbypass.8" 2>/dev/null |
		sed -n '/^EXIT STATUS/,/^FILES/p' >"$TMP/exit.txt"
	sed -n '/^## Troubleshooting and exit codes/,/^## What is next/p' "$TOP/README.md" >"$TMP/readme.txt"
	for code in $codes; do
		grep -qE "^ +$code( |\$)" "$TMP/exit.txt" || missing+=("man:$code")
		grep -qE "^\| $code \||\b$code (and|for)\b|\band $code\b" "$TMP/readme.txt" ||
			missing+=("README:$code")
		# --help lists the binary's own: not load.sh's 10, 11, trace's 13, 14, the proxy's 17, 20
		case $code in 10 | 11 | 13 | 14 | 17 | 20) continue ;; esac
		"$TOP/sockbypass" load --help | grep -qE "\b$code\b" || missing+=("--help:$code")
	done
	[ ${#missing[@]} -eq 0 ] || fail "exit codes not listed: ${missing[*]}"
	echo "result: exit codes $codes in the man page, the README and --help"
}

# complete WORD...: what the bash completion offers after "sockbypass WORD..."
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=(sockbypass "$@"); COMP_CWORD=$#; _sockbypass
		printf "%s\n" "${COMPREPLY[@]}"' - "$TOP/completion/sockbypass" "$@" | sort | tr '\n' ' '
}

# no-root: test_bash_completion_offers_each_verbs_options
test_bash_completion_offers_each_verbs_options() {
	local verb offered
	assert_eq "$(complete_words po)" "portmap " "sockbypass po<TAB>"
	assert_eq "$(complete_words "")" "--help --version features help load portmap scope status unload " \
		"sockbypass <TAB>"
	assert_eq "$(complete_words portmap "")" "add list remove " "sockbypass portmap <TAB>"
	assert_eq "$(complete_words scope a)" "add " "sockbypass scope a<TAB>"
	assert_eq "$(complete_words load --pin-dir /sys/fs/bp)" "/sys/fs/bpf " "a --pin-dir directory"
	for verb in load unload status features scope portmap; do
		offered=$(complete_words "$verb" -- | tr ' ' '\n' | grep -vx -- '--help' | grep . | sort)
		assert_eq "$offered" "$(help_options "$verb")" "completion of 'sockbypass $verb --'"
	done
}

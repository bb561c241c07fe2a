#!/usr/bin/env bash
# Build output in Heroku's style: "-----> " steps, seven-space indented details, errors on stderr.

# Redundant for callers, which set these already; it tells shellcheck how these functions run.
set -euo pipefail

# Set once a user error has been explained: bin/compile's exit trap then adds nothing. Call
# output::error in bin/compile's own shell (not inside $(...)), so the mark is seen there.
OUTPUT_ERROR_SHOWN=""

output::step() {
	echo "-----> ${1}"
}

# Usage: some_command |& output::indent
output::indent() {
	sed --unbuffered "s/^/       /"
}

# Usage: output::error <<-EOF ... EOF   (the message: what failed, then what to do)
output::error() {
	# shellcheck disable=SC2034 # read by lib/failure.sh
	OUTPUT_ERROR_SHOWN=1
	{
		echo
		sed --unbuffered "s/^/ !     /"
		echo
	} >&2
}

#!/usr/bin/env bash
# Build output in Heroku's style: "-----> " steps, seven-space indented details, errors on stderr.

# Redundant for callers, which set these already; it tells shellcheck how these functions run.
set -euo pipefail

output::step() {
	echo "-----> ${1}"
}

# Usage: some_command |& output::indent
output::indent() {
	sed --unbuffered "s/^/       /"
}

# Usage: output::error <<-EOF ... EOF   (the message: what failed, then what to do)
output::error() {
	{
		echo
		sed --unbuffered "s/^/ !     /"
		echo
	} >&2
}

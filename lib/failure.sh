#!/usr/bin/env bash
# Every failure of bin/compile ends with a " !     " block. User errors explain themselves with
# output::error; anything else (a bug here, a broken build machine) is an internal error, told
# apart from them and pointing at the issue tracker, as heroku-buildpack-python does.
# Where the issue tracker is: the URL the app added the buildpack from (heroku buildpacks).

set -euo pipefail

FAILED_COMMAND=""

# Usage: failure::install_traps   (in bin/compile, after `set -o errtrace`)
failure::install_traps() {
	# The first command that fails in this shell is the one to report; errtrace makes the ERR trap
	# fire inside functions too, where set -e stops the build.
	trap 'failure::remember "${BASH_COMMAND}" "${BASH_SOURCE[0]##*/}" "${LINENO}"' ERR
	trap 'failure::on_exit "$?"' EXIT
}

failure::remember() {
	[[ -n "${FAILED_COMMAND}" ]] || FAILED_COMMAND="${1} (${2} line ${3})"
}

failure::on_exit() {
	local status="${1}"
	((status != 0)) || return 0
	[[ -z "${OUTPUT_ERROR_SHOWN}" ]] || return 0
	output::error <<-EOF
		Internal error: the sidekiq-metrics buildpack failed unexpectedly (status ${status}).

		This command failed: ${FAILED_COMMAND:-unknown}

		This is not a problem with your app. Build again; if it fails the same way,
		open an issue with this build output on the buildpack's repository (its URL
		is the one \`heroku buildpacks\` lists for sidekiq-metrics).
	EOF
}

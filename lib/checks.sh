#!/usr/bin/env bash
# What the build needs before it downloads anything: a stack to build for, a cache it can write.

set -euo pipefail

checks::stack_is_set() {
	[[ -z "${STACK:-}" ]] || return 0
	output::error <<-EOF
		Error: the environment variable STACK is not set.

		Heroku's build system sets it for every build. To run bin/compile by hand,
		set it to the stack to build for, e.g. STACK=heroku-24.
	EOF
	return 1
}

# The runtime archive and the wheels are kept in the cache, so it must take a file.
checks::cache_is_writable() {
	local cache_dir="${1}"
	local probe="${cache_dir}/.write-test"
	local message
	if message="$({ mkdir -p "${cache_dir}" && : >"${probe}" && rm -f "${probe}"; } 2>&1)"; then
		return 0
	fi
	output::error <<-EOF
		Error: sidekiq-metrics cannot write to the build cache.

		${message}

		The build cache's disk is full or read-only. Clear the app's build cache
		(heroku builds:cache:purge, from the heroku-builds CLI plugin), then build again.
	EOF
	return 1
}

# bin/build is run by a Cloud Native Buildpacks lifecycle, which sets these; by hand, they must be set too.
checks::cnb_inputs() {
	local name missing=()
	for name in CNB_LAYERS_DIR CNB_PLATFORM_DIR CNB_TARGET_ARCH; do
		[[ -n "${!name:-}" ]] || missing+=("${name}")
	done
	((${#missing[@]})) || return 0
	output::error <<-EOF
		Error: ${missing[*]} not set.

		bin/build is the Cloud Native Buildpack's build: a CNB lifecycle (pack build, Heroku Fir)
		runs it with these set. On Heroku's classic stacks the build runs bin/compile instead.
	EOF
	return 1
}

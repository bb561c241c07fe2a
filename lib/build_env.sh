#!/usr/bin/env bash
# The app's config vars: bin/compile receives them in ENV_DIR, bin/build in $CNB_PLATFORM_DIR/env (one file per
# variable, in both).

set -euo pipefail

# Settings the build reads from the app's config vars. A variable already set in the build
# environment wins, so a platform-wide mirror is not undone by an app's config.
BUILD_ENV_VARS=(
	PIP_EXTRA_INDEX_URL
	PIP_FIND_LINKS
	PIP_INDEX_URL
	PIP_NO_INDEX
	PIP_TRUSTED_HOST
	SIDEKIQ_METRICS_PYTHON_BASE_URL
	SIDEKIQ_METRICS_PYTHON_SHA256
	SIDEKIQ_METRICS_PYTHON_URL
)

build_env::import() {
	local env_dir="${1}"
	local name
	for name in "${BUILD_ENV_VARS[@]}"; do
		if [[ -z "${!name:-}" && -f "${env_dir}/${name}" ]]; then
			export "${name}=$(cat "${env_dir}/${name}")"
		fi
	done
}

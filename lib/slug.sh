#!/usr/bin/env bash
# What bin/compile leaves in the slug besides the runtime: the launcher and the .profile.d hook.
# Nothing written here holds the build directory's path: the app runs from another one (/app).

set -euo pipefail

slug::install_launcher() {
	local install_dir="${1}"
	local buildpack_dir="${2}"
	mkdir -p "${install_dir}/bin"
	cp "${buildpack_dir}/lib/launcher.sh" "${install_dir}/bin/sidekiq-metrics"
	chmod 755 "${install_dir}/bin/sidekiq-metrics"
}

slug::install_hook() {
	local build_dir="${1}"
	local buildpack_dir="${2}"
	mkdir -p "${build_dir}/.profile.d"
	cp "${buildpack_dir}/profile.d/sidekiq-metrics.sh" "${build_dir}/.profile.d/sidekiq-metrics.sh"
}

#!/usr/bin/env bash
# What bin/compile leaves in the slug besides the runtime (the launcher, the supervisor and the .profile.d hook),
# and bin/build in its layer (the launcher alone: on Fir the sidecar is the Python command's, no supervisor runs).
# Nothing written here holds the build directory's path: the app runs from another one (/app).

set -euo pipefail

# The launcher goes in bin/; the supervisor, when a directory is named for it, there (bin/ of a slug).
slug::install_programs() {
	local install_dir="${1}"
	local buildpack_dir="${2}"
	local supervisor_dir="${3:-}"
	mkdir -p "${install_dir}/bin"
	install -m 755 "${buildpack_dir}/lib/launcher.sh" "${install_dir}/bin/sidekiq-metrics"
	if [[ -n "${supervisor_dir}" ]]; then
		mkdir -p "${install_dir}/${supervisor_dir}"
		install -m 755 "${buildpack_dir}/lib/supervise.sh" "${install_dir}/${supervisor_dir}/supervise"
	fi
}

# The hook replaces whatever the app has at that name. An app's own file there, or a symlink to
# one of its files, is never written through: only the name is taken over.
slug::install_hook() {
	local build_dir="${1}"
	local buildpack_dir="${2}"
	local hook="${build_dir}/.profile.d/sidekiq-metrics.sh"
	mkdir -p "${build_dir}/.profile.d"
	rm -f "${hook}"
	install -m 644 "${buildpack_dir}/profile.d/sidekiq-metrics.sh" "${hook}"
}

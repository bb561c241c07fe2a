#!/usr/bin/env bash
# The emitter's Python packages: pinned wheels (with hashes) and the sidekiq_metrics package itself.

set -euo pipefail

# Installs the pinned wheels and our package into the runtime's own site-packages, so the
# emitter runs with `python -I` (isolated from the app's PYTHONPATH, PYTHONHOME, ...).
packages::install() {
	local python_home="${1}"
	local cache_dir="${2}"
	local buildpack_dir="${3}"
	local build_dir="${4:-}"

	local requirements="${buildpack_dir}/lib/runtime-requirements.txt"
	local names
	names="$(packages::names "${requirements}")"
	local wheels="${cache_dir}/wheels"
	local stamp
	stamp="${wheels}/.complete-$(sha256sum "${requirements}" | cut -c1-16)"
	local pip
	pip="$(python::bundled_pip "${python_home}")" || {
		output::error <<-EOF
			Error: the Python runtime has no bundled pip wheel (lib/python3.*/ensurepip/_bundled).

			sidekiq-metrics installs its packages with it. If SIDEKIQ_METRICS_PYTHON_URL is
			set, point it at one of Heroku's Python runtime archives, which have it.
		EOF
		return 1
	}
	local site
	site="$(python::run "${python_home}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

	if [[ -f "${stamp}" ]]; then
		output::step "Using cached packages (${names})"
	else
		output::step "Downloading packages (${names})"
		rm -rf "${wheels}"
		mkdir -p "${wheels}"
		# pip reads PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX... from the environment: a mirror works.
		# shellcheck disable=SC2310 # invoked in an if so that a failure can explain itself
		if ! packages::pip "${python_home}" "${pip}" download --dest "${wheels}" --no-deps --only-binary=:all: \
			--require-hashes --requirement "${requirements}"; then
			output::error <<-EOF
				Error: could not download the Python packages sidekiq-metrics needs.

				pip could not fetch the pinned wheels of ${names} (see above).
				This is often a passing network problem: build again. If your builds use a
				package mirror, set PIP_INDEX_URL (or PIP_FIND_LINKS) as a config var.
			EOF
			return 1
		fi
		touch "${stamp}"
	fi

	output::step "Installing the sidekiq-metrics emitter"
	packages::pip "${python_home}" "${pip}" install --no-index --find-links "${wheels}" --no-deps \
		--only-binary=:all: --require-hashes --no-compile --target "${site}" --upgrade \
		--requirement "${requirements}"
	rm -rf "${site:?}/bin"
	cp -R "${buildpack_dir}/sidekiq_metrics" "${site}/"
	find "${site}/sidekiq_metrics" -name __pycache__ -prune -exec rm -rf {} +
	# Bytecode now, so that dynos need not compile at every boot. The file names inside it are the
	# run-time ones: under /app for a slug, not this build directory's (pip's own --compile would keep
	# those); a layer (no build_dir) is where it runs.
	local paths=()
	[[ -z "${build_dir}" ]] || paths=(-s "${build_dir}" -p /app)
	python::run "${python_home}" -m compileall -q "${paths[@]}" "${site}" | output::indent
}

# The pinned packages' names, as the build says them: "click, redis, ...".
packages::names() {
	local line list=""
	while IFS= read -r line; do
		if [[ "${line}" =~ ^([A-Za-z0-9._-]+)== ]]; then
			list+="${list:+, }${BASH_REMATCH[1]}"
		fi
	done <"${1}"
	echo "${list}"
}

packages::pip() {
	local python_home="${1}"
	local pip="${2}"
	shift 2
	PIP_ROOT_USER_ACTION=ignore python::run "${python_home}" "${pip}/pip" "${@}" --disable-pip-version-check \
		--no-cache-dir --no-input --quiet |& output::indent
}

#!/usr/bin/env bash
# A Python runtime of our own in the slug: heroku-24 and heroku-26 run images have none.
# We use Heroku's relocatable runtime archives, the ones heroku-buildpack-python installs.

set -euo pipefail

PYTHON_VERSION="3.13.15"
PYTHON_BASE_URL="https://heroku-buildpack-python.s3.dualstack.us-east-1.amazonaws.com"

# The targets Heroku publishes a runtime for, as heroku/buildpacks-python declares them: <distro>-<version>-<arch>.
PYTHON_TARGETS=(ubuntu-22.04-amd64 ubuntu-24.04-amd64 ubuntu-24.04-arm64 ubuntu-26.04-amd64 ubuntu-26.04-arm64)

# Fails, saying what is supported, unless Heroku publishes a runtime for this stack and CPU (classic).
# Checked before any download. SIDEKIQ_METRICS_PYTHON_URL brings a runtime of the user's own.
python::check_platform() {
	local stack="${1}"
	local arch="${2}"
	[[ -z "${SIDEKIQ_METRICS_PYTHON_URL:-}" ]] || return 0
	case "${stack}" in
		heroku-22 | heroku-24 | heroku-26) ;;
		*)
			output::error <<-EOF
				Error: sidekiq-metrics does not support the stack ${stack}.

				It supports heroku-22, heroku-24 and heroku-26 (classic buildpacks, Cedar).
				To use another stack, point SIDEKIQ_METRICS_PYTHON_URL at a Python runtime
				archive built for it.
			EOF
			return 1
			;;
	esac
	# shellcheck disable=SC2310 # invoked in an if so that the failure explains itself
	if ! python::publishes ubuntu "${stack#heroku-}.04" "${arch}"; then
		output::error <<-EOF
			Error: Heroku publishes no Python runtime for ${stack} on the CPU architecture ${arch}.

			Supported: amd64 on heroku-22; amd64 and arm64 on heroku-24 and heroku-26.
			To build elsewhere, point SIDEKIQ_METRICS_PYTHON_URL at a Python runtime
			archive built for ${arch}.
		EOF
		return 1
	fi
}

# The same for a Cloud Native Buildpack's target (CNB_TARGET_DISTRO_NAME, _VERSION, CNB_TARGET_ARCH).
python::check_target() {
	local distro="${1}"
	local version="${2}"
	local arch="${3}"
	[[ -z "${SIDEKIQ_METRICS_PYTHON_URL:-}" ]] || return 0
	# shellcheck disable=SC2310 # invoked in an if so that the failure explains itself
	if ! python::publishes "${distro}" "${version}" "${arch}"; then
		output::error <<-EOF
			Error: Heroku publishes no Python runtime for the target ${distro:-?} ${version:-?} on ${arch:-?}.

			Supported, as buildpack.toml declares: amd64 on Ubuntu 22.04, 24.04 and 26.04;
			arm64 on Ubuntu 24.04 and 26.04 (Heroku's Fir run images). To build elsewhere,
			point SIDEKIQ_METRICS_PYTHON_URL at a Python runtime archive built for it.
		EOF
		return 1
	fi
}

python::publishes() {
	local target="${1}-${2}-${3}" supported
	for supported in "${PYTHON_TARGETS[@]}"; do
		[[ "${supported}" != "${target}" ]] || return 0
	done
	return 1
}

# Prints the runtime archive's URL: SIDEKIQ_METRICS_PYTHON_URL, else Heroku's for this distribution and CPU
# (the check above has said whether there is one), from Heroku's bucket or SIDEKIQ_METRICS_PYTHON_BASE_URL,
# a mirror that keeps Heroku's archive names.
python::archive_url() {
	local distro="${1}"
	local version="${2}"
	local arch="${3}"
	if [[ -n "${SIDEKIQ_METRICS_PYTHON_URL:-}" ]]; then
		echo "${SIDEKIQ_METRICS_PYTHON_URL}"
	else
		local base="${SIDEKIQ_METRICS_PYTHON_BASE_URL:-${PYTHON_BASE_URL}}"
		echo "${base%/}/python-${PYTHON_VERSION}-${distro}-${version}-${arch}.tar.zst"
	fi
}

# Prints a URL as it may be shown: a mirror's user name and password (https://user:pw@host/...)
# stay out of the build output.
python::shown_url() {
	local url="${1}"
	if [[ "${url}" =~ ^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@(.*)$ ]]; then
		url="${BASH_REMATCH[1]}***@${BASH_REMATCH[2]}"
	fi
	echo "${url}"
}

# Runs the runtime's Python. Heroku's archives are built --enable-shared with no RUNPATH: the
# interpreter starts only when the loader is told where libpython is. -I: isolated from the app's
# PYTHONPATH, PYTHONHOME and friends; -B: no bytecode with the build directory's path in it.
python::run() {
	local python_home="${1}"
	shift
	LD_LIBRARY_PATH="${python_home}/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		"${python_home}/bin/python3" -I -B "${@}"
}

# Downloads the archive into the cache unless it is there already, checks it, and unpacks it.
python::install() {
	local python_home="${1}"
	local cache_dir="${2}"
	local url="${3}"

	local archive
	archive="${cache_dir}/python-$(echo -n "${url}" | sha256sum | cut -c1-16).tar.zst"
	if [[ -f "${archive}" ]]; then
		output::step "Using the cached Python runtime"
	else
		output::step "Downloading the Python runtime"
		python::shown_url "${url}" | output::indent
		# Only this archive is kept: other URLs' archives are from older builds.
		rm -f "${cache_dir}"/python-*.tar.zst
		local status=0 shown_url
		shown_url="$(python::shown_url "${url}")"
		# shellcheck disable=SC2310 # invoked in an || so that a failure can explain itself
		python::download "${url}" "${archive}.partial" || status=$?
		if ((status != 0)); then
			rm -f "${archive}.partial"
			if ((status == 23)); then # curl: "Failed writing received data to disk"
				output::error <<-EOF
					Error: could not write the Python runtime for sidekiq-metrics into the build cache.

					The build cache's disk is full or read-only (see curl's message above).
					Clear the app's build cache (heroku builds:cache:purge, from the
					heroku-builds CLI plugin), then build again.
				EOF
				return 1
			fi
			output::error <<-EOF
				Error: could not download the Python runtime for sidekiq-metrics.

				From: ${shown_url}

				This is often a passing network problem: build again.
				If your builds use a mirror, point SIDEKIQ_METRICS_PYTHON_URL at a copy of
				the archive there (http(s):// or file://) and set SIDEKIQ_METRICS_PYTHON_SHA256.
			EOF
			return 1
		fi
		mv "${archive}.partial" "${archive}"
	fi

	# shellcheck disable=SC2310 # invoked in an if so that a failure can explain itself
	if ! python::verify "${archive}"; then
		rm -f "${archive}"
		return 1
	fi

	mkdir -p "${python_home}"
	# shellcheck disable=SC2310 # invoked in an if so that a failure can explain itself
	if ! tar --directory "${python_home}" --extract --file "${archive}" --zstd |& output::indent; then
		rm -f "${archive}"
		output::error <<-EOF
			Error: the Python runtime archive for sidekiq-metrics could not be unpacked.

			tar's message is above. If it says the disk is full, the slug is too large
			for the build; otherwise the cached archive was damaged and is now removed:
			build again.
		EOF
		return 1
	fi
	if [[ ! -x "${python_home}/bin/python3" ]]; then
		rm -f "${archive}"
		output::error <<-EOF
			Error: the Python runtime archive for sidekiq-metrics could not be unpacked.

			It did not hold bin/python3 in the layout of Heroku's Python runtime archives.
			If SIDEKIQ_METRICS_PYTHON_URL is set, check that it points at such an archive.
		EOF
		return 1
	fi
}

python::download() {
	local url="${1}"
	local dest="${2}"
	curl \
		--connect-timeout "${CURL_CONNECT_TIMEOUT:-10}" \
		--fail \
		--location \
		--max-time "${CURL_TIMEOUT:-120}" \
		--output "${dest}" \
		--retry 3 \
		--retry-connrefused \
		--show-error \
		--silent \
		"${url}" |& output::indent
}

# Checks SIDEKIQ_METRICS_PYTHON_SHA256 when it is set. Heroku publishes no checksums for its
# archives; they come over HTTPS from Heroku's own bucket, as heroku-buildpack-python fetches them.
python::verify() {
	local archive="${1}"
	# A value pasted with a trailing newline, carriage return or space means the same checksum.
	local expected="${SIDEKIQ_METRICS_PYTHON_SHA256:-}"
	expected="${expected//[[:space:]]/}"
	[[ -n "${expected}" ]] || return 0
	if [[ ! "${expected}" =~ ^[0-9A-Fa-f]{64}$ ]]; then
		output::error <<-EOF
			Error: SIDEKIQ_METRICS_PYTHON_SHA256 is not a SHA-256 checksum.

			It must be 64 hexadecimal digits, as sha256sum prints them. Set it to the
			checksum of the archive SIDEKIQ_METRICS_PYTHON_URL points at, or unset it.
		EOF
		return 1
	fi
	local actual
	actual="$(sha256sum "${archive}" | cut -d' ' -f1)"
	if [[ "${actual}" != "${expected,,}" ]]; then
		output::error <<-EOF
			Error: the Python runtime archive for sidekiq-metrics failed its checksum.

			SIDEKIQ_METRICS_PYTHON_SHA256 expects ${expected}
			but the archive's SHA-256 is          ${actual}

			The download was discarded. Check the archive SIDEKIQ_METRICS_PYTHON_URL points
			at, and the checksum you set; then build again.
		EOF
		return 1
	fi
	echo "SHA-256 verified" | output::indent
}

# Prints the path of pip inside the runtime's bundled pip wheel (no ensurepip, no download).
# The home is quoted apart from the pattern: a build path holding [ * ? is a name, not a glob.
python::bundled_pip() {
	local python_home="${1}"
	local wheels
	shopt -s nullglob
	wheels=("${python_home}"/lib/python3.*/ensurepip/_bundled/pip-*.whl)
	shopt -u nullglob
	((${#wheels[@]} > 0)) || return 1
	echo "${wheels[-1]}"
}

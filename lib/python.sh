#!/usr/bin/env bash
# A Python runtime of our own in the slug: heroku-24 and heroku-26 run images have none.
# We use Heroku's relocatable runtime archives, the ones heroku-buildpack-python installs.

set -euo pipefail

PYTHON_VERSION="3.13.15"
PYTHON_BASE_URL="https://heroku-buildpack-python.s3.dualstack.us-east-1.amazonaws.com"

# Prints the Ubuntu version of a Heroku stack, or fails for a stack we do not support.
python::ubuntu_version() {
	local stack="${1}"
	case "${stack}" in
		heroku-22 | heroku-24 | heroku-26) echo "${stack#heroku-}.04" ;;
		*) return 1 ;;
	esac
}

# Prints the runtime archive's URL: SIDEKIQ_METRICS_PYTHON_URL, else Heroku's for this stack and CPU.
python::archive_url() {
	local stack="${1}"
	local arch="${2}"
	if [[ -n "${SIDEKIQ_METRICS_PYTHON_URL:-}" ]]; then
		echo "${SIDEKIQ_METRICS_PYTHON_URL}"
		return 0
	fi
	local ubuntu
	ubuntu="$(python::ubuntu_version "${stack}")" || return 1
	echo "${PYTHON_BASE_URL}/python-${PYTHON_VERSION}-ubuntu-${ubuntu}-${arch}.tar.zst"
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
		echo "${url}" | output::indent
		# Only this archive is kept: other URLs' archives are from older builds.
		rm -f "${cache_dir}"/python-*.tar.zst
		mkdir -p "${cache_dir}"
		# shellcheck disable=SC2310 # invoked in an if so that a failure can explain itself
		if ! python::download "${url}" "${archive}.partial"; then
			rm -f "${archive}.partial"
			output::error <<-EOF
				Error: could not download the Python runtime for sidekiq-metrics.

				From: ${url}

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
	if ! tar --directory "${python_home}" --extract --file "${archive}" --zstd |& output::indent ||
		[[ ! -x "${python_home}/bin/python3" ]]; then
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
	local expected="${SIDEKIQ_METRICS_PYTHON_SHA256:-}"
	[[ -n "${expected}" ]] || return 0
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
python::bundled_pip() {
	local python_home="${1}"
	compgen -G "${python_home}/lib/python3.*/ensurepip/_bundled/pip-*.whl" | tail -n 1
}

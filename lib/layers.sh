#!/usr/bin/env bash
# Cloud Native Buildpack layers (Buildpack API 0.10): <layers>/<name>/ and <layers>/<name>.toml, whose [types]
# say what the lifecycle does with the layer and whose [metadata] say what it holds, so that a rebuild can tell
# whether the layer it would make is the one it has.

set -euo pipefail

# Usage: layers::write LAYERS_DIR NAME "launch cache" KEY=VALUE...   (values: no quotes or backslashes)
layers::write() {
	local layers_dir="${1}"
	local name="${2}"
	local types="${3}"
	shift 3
	local type pair
	{
		echo "[types]"
		for type in launch build cache; do
			if [[ " ${types} " == *" ${type} "* ]]; then
				echo "${type} = true"
			else
				echo "${type} = false"
			fi
		done
		echo
		echo "[metadata]"
		for pair in "$@"; do
			echo "${pair%%=*} = \"${pair#*=}\""
		done
	} >"${layers_dir}/${name}.toml"
}

# True when <layers>/<name>.toml, as the lifecycle restored it (its own TOML writer: spacing and order are not
# ours), holds in [metadata] exactly these KEY=VALUE pairs.
layers::holds() {
	local layers_dir="${1}"
	local name="${2}"
	shift 2
	local file="${layers_dir}/${name}.toml"
	[[ -f "${file}" ]] || return 1
	local line section="" found=()
	while IFS= read -r line || [[ -n "${line}" ]]; do
		if [[ "${line}" =~ ^[[:space:]]*\[([A-Za-z0-9_.-]+)\][[:space:]]*$ ]]; then
			section="${BASH_REMATCH[1]}"
		elif [[ "${section}" == metadata && "${line}" =~ ^[[:space:]]*([A-Za-z0-9_-]+)[[:space:]]*=[[:space:]]*[\"\']([^\"\']*)[\"\'][[:space:]]*$ ]]; then
			found+=("${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
		fi
	done <"${file}"
	local wanted have
	wanted="$(printf '%s\n' "$@" | LC_ALL=C sort)"
	have="$(printf '%s\n' "${found[@]}" | LC_ALL=C sort)"
	[[ "${have}" == "${wanted}" ]]
}

# A short fingerprint of files' and directories' contents: each file's path (below its argument) and bytes, in
# a fixed order; bytecode caches left out.
layers::fingerprint() {
	local root files file
	for root in "$@"; do
		if [[ -d "${root}" ]]; then
			files="$(find "${root}" -name __pycache__ -prune -o -type f -print)"
			files="$(LC_ALL=C sort <<<"${files}")"
		else
			files="${root}"
		fi
		while IFS= read -r file; do
			printf '%s\n' "${root##*/}${file#"${root}"}"
			cat "${file}"
		done <<<"${files}"
	done | sha256sum | cut -c1-16
}

layers::text_fingerprint() {
	printf '%s' "${1}" | sha256sum | cut -c1-16
}

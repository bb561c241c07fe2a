#!/bin/bash
# The `sidekiq-metrics` command of a slug (.sidekiq-metrics/bin/sidekiq-metrics) or of the Cloud Native
# Buildpack's layer (on every process's PATH there): runs the emitter with the runtime's own Python, wherever
# it is unpacked. `heroku run .sidekiq-metrics/bin/sidekiq-metrics run --once` works too.
#
# Heroku's Python runtime is built --enable-shared with no RUNPATH: it starts only with its lib in
# LD_LIBRARY_PATH, which only this process and its Python get. -I isolates that Python from the
# app's PYTHONPATH, PYTHONHOME and friends (the Python buildpack sets them for the whole app);
# -u writes each line at once. /bin/bash and builtins only: the app's PATH may lack /usr/bin.
#
# `sidekiq-metrics sidecar -- COMMAND [ARG...]` (Fir, where no .profile.d runs) is the Python command's
# (sidekiq_metrics/sidecar.py): it runs COMMAND and the emitter, and ends the emitter with COMMAND. COMMAND gets
# the environment this script was given: the LD_LIBRARY_PATH set below is the runtime's alone, so its value as it
# came is handed over (SIDEKIQ_METRICS_APP_LD_LIBRARY_PATH: "set:VALUE" or "unset") for the sidecar to put back.
set -euo pipefail +o posix
case "${BASH_SOURCE[0]}" in
	*/*) bin_dir="${BASH_SOURCE[0]%/*}" ;;
	*) bin_dir="." ;;
esac
home="$(CDPATH='' cd -P -- "${bin_dir}/.." && pwd)"

if [[ "${1:-}" == sidecar ]]; then
	shift
	[[ "${1:-}" != -- ]] || shift
	if (($# == 0)); then
		printf '%s\n' "sidekiq-metrics: usage: sidekiq-metrics sidecar -- COMMAND [ARGUMENT...]" >&2
		exit 2
	fi
	set -- sidecar -- "$@"
	if [[ -v LD_LIBRARY_PATH ]]; then
		export SIDEKIQ_METRICS_APP_LD_LIBRARY_PATH="set:${LD_LIBRARY_PATH}"
	else
		export SIDEKIQ_METRICS_APP_LD_LIBRARY_PATH=unset
	fi
fi

export LD_LIBRARY_PATH="${home}/python/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
exec "${home}/python/bin/python3" -I -u -m sidekiq_metrics "${@}"

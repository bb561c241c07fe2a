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
# `sidekiq-metrics sidecar -- COMMAND [ARG...]` (Fir, where no .profile.d runs): starts the supervisor in the
# background, the emitter polling only while it holds the Redis lease, then becomes COMMAND (exec: its pid,
# signals and exit status are the command's own), with the environment it was given, untouched.
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
	supervisor="${home}/libexec/supervise"
	[[ -x "${supervisor}" ]] || supervisor="${home}/bin/supervise"
	# Its pid file where any process may write (a layer may not be writable at run time).
	SIDEKIQ_METRICS_LEASE=1 "${supervisor}" "${TMPDIR:-/tmp}/sidekiq-metrics-supervisor.pid" </dev/null &
	exec "$@"
fi

export LD_LIBRARY_PATH="${home}/python/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
exec "${home}/python/bin/python3" -I -u -m sidekiq_metrics "${@}"

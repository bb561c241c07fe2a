#!/bin/bash
# Copied into the slug as .sidekiq-metrics/bin/sidekiq-metrics: runs the emitter with the slug's own
# Python, wherever the slug is unpacked. `heroku run .sidekiq-metrics/bin/sidekiq-metrics run --once`
# works too.
#
# Heroku's Python runtime is built --enable-shared with no RUNPATH: it starts only with its lib in
# LD_LIBRARY_PATH, which only this process and its Python get. -I isolates that Python from the
# app's PYTHONPATH, PYTHONHOME and friends (the Python buildpack sets them for the whole app);
# -u writes each line at once. /bin/bash and builtins only: the app's PATH may lack /usr/bin.
set -euo pipefail +o posix
unset CDPATH
case "${BASH_SOURCE[0]}" in
	*/*) bin_dir="${BASH_SOURCE[0]%/*}" ;;
	*) bin_dir="." ;;
esac
home="$(cd -P -- "${bin_dir}/.." && pwd)"
export LD_LIBRARY_PATH="${home}/python/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
exec "${home}/python/bin/python3" -I -u -m sidekiq_metrics "${@}"

#!/usr/bin/env bash
# Copied into the slug as .sidekiq-metrics/bin/sidekiq-metrics: runs the emitter with the slug's own
# Python, wherever the slug is unpacked. `heroku run .sidekiq-metrics/bin/sidekiq-metrics run --once`
# works too.
#
# -I isolates that Python from the app's PYTHONPATH, PYTHONHOME and friends (the Python buildpack
# sets them for the whole app); -u writes each line at once. Only this process gets LD_LIBRARY_PATH.
set -euo pipefail
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LD_LIBRARY_PATH="${home}/python/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
exec "${home}/python/bin/python3" -I -u -m sidekiq_metrics "${@}"

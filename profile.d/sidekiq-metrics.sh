# shellcheck shell=bash
# sidekiq-metrics: starts the Sidekiq metrics emitter in the background, on one dyno only.
#
# Heroku sources every .profile.d/*.sh with bash at every dyno start (one-off `heroku run`
# dynos too), before the dyno's own command. So this file only ever `return`s (an `exit` would
# end the dyno's startup shell), does nothing slow in the foreground, and leaves the app's shell
# as it found it: its functions are removed again and every variable is local. The emitter gets
# its environment from its own launcher, never from here.
#
# It starts the emitter when all of these hold:
#   DYNO equals SIDEKIQ_METRICS_DYNO (default web.1),
#   a Redis URL is configured (SIDEKIQ_METRICS_REDIS_URL, the variable REDIS_PROVIDER names, or REDIS_URL),
#   SIDEKIQ_METRICS_DISABLE is unset or empty.
# A supervisor restarts the emitter if it dies (after SIDEKIQ_METRICS_RESTART_DELAY seconds,
# default 10), but never after SIGTERM or SIGINT, nor after a configuration error (status 2).

sidekiq_metrics_hook::redis_configured() {
	[[ -n "${SIDEKIQ_METRICS_REDIS_URL:-}" || -n "${REDIS_URL:-}" ]] && return 0
	local provider="${REDIS_PROVIDER:-}"
	[[ -n "${provider}" ]] || return 1
	# Not a variable name (a URL pasted in by mistake): start, and let the emitter say what is wrong.
	[[ "${provider}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || return 0
	[[ -n "${!provider:-}" ]]
}

sidekiq_metrics_hook::supervise() {
	local launcher="${1}"
	local delay="${SIDEKIQ_METRICS_RESTART_DELAY:-10}"
	local child="" status
	# Anything but a plain number of seconds would make `sleep` fail at once: a restart storm.
	[[ "${delay}" =~ ^[0-9]{1,5}(\.[0-9]+)?$ ]] || delay=10
	# A subshell of its own: these options and traps never reach the app's shell.
	set +e +u
	trap '[[ -n "${child}" ]] && kill -TERM "${child}" 2>/dev/null; exit 0' TERM INT
	while true; do
		"${launcher}" run &
		child=$!
		wait "${child}"
		status=$?
		case "${status}" in
			0 | 130 | 143) return 0 ;; # stopped by SIGTERM or SIGINT: Heroku is shutting the dyno down
			2)
				echo "sidekiq-metrics: not restarting the emitter: fix the setting named above" >&2
				return 0
				;;
			*) ;;
		esac
		echo "sidekiq-metrics: the emitter exited with status ${status}; restarting in ${delay}s" >&2
		sleep "${delay}" &
		child=$!
		wait "${child}"
	done
}

sidekiq_metrics_hook::start() {
	[[ -z "${SIDEKIQ_METRICS_DISABLE:-}" ]] || return 0
	[[ "${DYNO:-}" == "${SIDEKIQ_METRICS_DYNO:-web.1}" ]] || return 0
	sidekiq_metrics_hook::redis_configured || return 0
	local launcher="${HOME:-/app}/.sidekiq-metrics/bin/sidekiq-metrics"
	if [[ ! -x "${launcher}" ]]; then
		echo "sidekiq-metrics: not started: ${launcher} is missing; rebuild the app with this buildpack" >&2
		return 0
	fi
	echo "sidekiq-metrics: starting the Sidekiq metrics emitter on ${DYNO}" >&2
	(sidekiq_metrics_hook::supervise "${launcher}") </dev/null &
	return 0
}

sidekiq_metrics_hook::start
unset -f sidekiq_metrics_hook::start sidekiq_metrics_hook::redis_configured sidekiq_metrics_hook::supervise

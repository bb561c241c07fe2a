#!/bin/bash
# Copied into the slug as .sidekiq-metrics/bin/supervise; the dyno hook starts it in the background.
# It keeps one emitter running on this dyno:
# - One supervisor per dyno, however often the hook is sourced: the first claims
#   .sidekiq-metrics/supervisor.pid, later ones see it alive and stop. A dyno's filesystem starts
#   fresh at every boot; a file left by a supervisor that is gone (a reused slug directory) is
#   taken over.
# - An emitter that dies is started again after SIDEKIQ_METRICS_RESTART_DELAY seconds (default
#   10), and after each further failure in a row twice as long (at least 1 s), up to
#   SIDEKIQ_METRICS_RESTART_MAX_DELAY (default 300). A run that lasted that long was healthy: the
#   next restart waits the first delay again. One line a restart.
# - Not restarted when it stopped on a signal (0, 130, 143: the dyno is shutting down) or for a
#   configuration error (2), which it has explained in one line.
# - SIGTERM, SIGINT or SIGHUP to the supervisor stop the emitter and the supervisor: a hang-up
#   means the session that started it is gone, and an emitter left without a supervisor is worse.
#
# Written for any environment the app's config vars make: valid in bash's POSIX mode
# (POSIXLY_CORRECT puts this bash in it too), options set here, and no program looked up in the
# app's PATH: `sleep` comes from the standard utilities' path (`command -p`).

# Our own options, whatever SHELLOPTS or POSIXLY_CORRECT brought in from the app's environment.
set +e +u +o pipefail +o posix

# Usage: supervise [PID_FILE]   (default: beside its directory). Cedar's only: on Fir the sidecar, a Python
# command (sidekiq_metrics/sidecar.py), supervises its emitter itself, with the same restart rules.
bin_dir="${0%/*}"
launcher="${bin_dir}/../bin/sidekiq-metrics"
pid_file="${1:-${bin_dir}/../supervisor.pid}"
child=""

# "10", "0.5" -> milliseconds in $ms; fails for anything else, so that a typo is no restart storm.
to_ms() {
	case "$1" in
		'' | *[!0-9.]* | *.*.* | .* | *.) return 1 ;;
		*) ;;
	esac
	whole="${1%%.*}"
	fraction=""
	case "$1" in *.*) fraction="${1#*.}" ;; *) ;; esac
	fraction="${fraction}000"
	[[ "${#whole}" -le 5 ]] || return 1
	ms=$((10#${whole} * 1000 + 10#${fraction:0:3}))
}

# 1500 -> "1.5", 10000 -> "10", 250 -> "0.25", in $seconds (no subshell, no program).
to_seconds() {
	printf -v fraction '%03d' $(($1 % 1000))
	while [[ "${fraction%0}" != "${fraction}" ]]; do fraction="${fraction%0}"; done
	seconds="$(($1 / 1000))${fraction:+.${fraction}}"
}

# Milliseconds since the epoch in $now (EPOCHREALTIME has the locale's decimal mark).
clock() {
	now="${EPOCHREALTIME/[.,]/}"
	now=$((now / 1000))
}

# True when pid $1 is a live supervisor of this slug (a pid can be reused by any process).
is_supervisor() {
	case "$1" in '' | *[!0-9]*) return 1 ;; *) ;; esac
	[[ "$1" != "$$" ]] || return 1
	mapfile -d '' -t argv 2>/dev/null <"/proc/$1/cmdline" || return 1
	[[ "${argv[1]:-}" = "$0" ]]
}

claim() {
	if (set -o noclobber && printf '%s\n' "$$" >"${pid_file}") 2>/dev/null; then
		return 0
	fi
	other=""
	read -r other 2>/dev/null <"${pid_file}"
	if is_supervisor "${other}"; then
		printf '%s\n' "sidekiq-metrics: already running on this dyno (supervisor ${other})" >&2
		return 1
	fi
	printf '%s\n' "$$" >|"${pid_file}"
}

stop() {
	[[ -z "${child}" ]] || kill -TERM "${child}" 2>/dev/null
	exit 0
}

claim || exit 0
trap stop TERM INT HUP

to_ms "${SIDEKIQ_METRICS_RESTART_DELAY:-10}" || to_ms 10
first_delay="${ms}"
to_ms "${SIDEKIQ_METRICS_RESTART_MAX_DELAY:-300}" || to_ms 300
max_delay="${ms}"
[[ "${max_delay}" -ge "${first_delay}" ]] || max_delay="${first_delay}"
delay="${first_delay}"

printf '%s\n' "sidekiq-metrics: starting the Sidekiq metrics emitter on ${DYNO:-this dyno}" >&2
while :; do
	clock
	started="${now}"
	"${launcher}" run &
	child=$!
	wait "${child}"
	status=$?
	child=""
	case "${status}" in
		0 | 130 | 143) exit 0 ;;
		2)
			printf '%s\n' "sidekiq-metrics: not restarting the emitter: fix the setting named above" >&2
			exit 0
			;;
		*) ;;
	esac
	clock
	[[ $((now - started)) -lt "${max_delay}" ]] || delay="${first_delay}"
	to_seconds "${delay}"
	printf '%s\n' "sidekiq-metrics: the emitter exited with status ${status}; restarting in ${seconds}s" >&2
	command -p sleep "${seconds}" &
	child=$!
	wait "${child}"
	child=""
	delay=$((delay * 2))
	[[ "${delay}" -ge 1000 ]] || delay=1000
	[[ "${delay}" -le "${max_delay}" ]] || delay="${max_delay}"
done

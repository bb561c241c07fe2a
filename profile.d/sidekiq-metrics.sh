# shellcheck shell=bash
# sidekiq-metrics: starts the Sidekiq metrics emitter's supervisor in the background, on one dyno.
#
# Heroku sources every .profile.d/*.sh in the dyno's startup shell at every dyno start (one-off
# `heroku run` dynos too), before the dyno's own command. That shell may be in whatever state a
# config var or an earlier script left it: POSIX mode (POSIXLY_CORRECT, `set -o posix`),
# `set -euo pipefail`, nullglob or failglob, an odd IFS, a PATH without /usr/bin. So this file is
# valid in bash's POSIX mode (no function names with `::`), quotes every expansion and tests with
# [[ ]] (no word splitting, no globbing), and runs no program in the foreground. On the dyno that
# runs the emitter, all it does happens in one subshell: no variable, function or option of ours
# reaches the app's shell, and nothing here can end it (`exit` leaves only the subshell; `|| :`
# because under `set -e` a failed subshell would end the shell that sourced us). Every other dyno
# costs one test in the app's shell, not even a fork.
#
# It starts .sidekiq-metrics/bin/supervise when all of these hold:
#   DYNO equals SIDEKIQ_METRICS_DYNO (default web.1), or SIDEKIQ_METRICS_DYNO names a process type (web)
#     and DYNO is one of its dynos (web.3): then every such dyno runs an emitter and a Redis lease
#     elects the one that polls (SIDEKIQ_METRICS_LEASE, set for the supervisor alone),
#   a Redis is configured (SIDEKIQ_METRICS_SHARDS, SIDEKIQ_METRICS_REDIS_URL, the variable REDIS_PROVIDER
#     names, or REDIS_URL),
#   SIDEKIQ_METRICS_DISABLE is unset or empty.
# The rule, as config.why_no_emitter states it too (a test holds the two equal): blank is unset.
[[ "${SIDEKIQ_METRICS_DISABLE:-}" == *[![:space:]]* || ("${DYNO:-}" != "${SIDEKIQ_METRICS_DYNO:-web.1}" &&
	"${DYNO:-}" != "${SIDEKIQ_METRICS_DYNO:-web.1}".[0-9]*) ]] || (
	set +e +u
	if [[ "${SIDEKIQ_METRICS_SHARDS:-}${SIDEKIQ_METRICS_REDIS_URL:-}${REDIS_URL:-}" != *[![:space:]]* ]]; then
		provider="${REDIS_PROVIDER:-}"
		provider="${provider#"${provider%%[![:space:]]*}"}" # trimmed, as Sidekiq and config.py read it
		provider="${provider%"${provider##*[![:space:]]}"}"
		case "${provider}" in
			"") exit 0 ;;
			# Not a variable name (a URL pasted in by mistake): start, and let the emitter say what is wrong.
			[0-9]* | *[!A-Za-z0-9_]*) ;;
			*) [[ "${!provider:-}" == *[![:space:]]* ]] || exit 0 ;;
		esac
	fi
	supervisor="${HOME:-/app}/.sidekiq-metrics/bin/supervise"
	if [[ ! -x "${supervisor}" ]]; then
		printf '%s\n' "sidekiq-metrics: not started: ${supervisor} is missing; rebuild the app with this buildpack" >&2
		exit 0
	fi
	if [[ "${DYNO:-}" == "${SIDEKIQ_METRICS_DYNO:-web.1}" ]]; then
		"${supervisor}" </dev/null &
	else
		SIDEKIQ_METRICS_LEASE=1 "${supervisor}" </dev/null &
	fi
) || :

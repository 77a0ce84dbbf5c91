# Shared by the stack hooks (sourced, not a hook itself: hooks are NN-*.sh).
# Process management around a pid file.

# pid_running PIDFILE: the process named in PIDFILE is alive.
pid_running() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# pid_wait PIDFILE TRIES CMD...: run CMD every 0.1 s until it succeeds (0),
# the process dies or TRIES run out (1).
pid_wait() {
  local pidfile=$1 tries=$2 _
  shift 2
  for _ in $(seq 1 "$tries"); do
    pid_running "$pidfile" || return 1
    "$@" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# pid_stop LABEL PIDFILE SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL
# (said on stderr); removes PIDFILE.
pid_stop() {
  local label=$1 pidfile=$2 seconds=$3 pid _
  if pid_running "$pidfile"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((seconds * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$label $pid did not stop within $seconds s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

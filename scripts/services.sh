#!/usr/bin/env bash
# Local Weaviate and MinIO servers, built from source with Go (no Docker needed) and run on 127.0.0.1.
#
#   bash scripts/services.sh build  [weaviate|minio|all]   # go install at the pinned version (once; Go caches it)
#   bash scripts/services.sh start  [weaviate|minio|all]   # builds if needed, starts, waits until healthy
#   bash scripts/services.sh stop   [weaviate|minio|all]
#   bash scripts/services.sh status [weaviate|minio|all]   # exit 0 only when all named are running and healthy
#   bash scripts/services.sh env    [weaviate|minio|all]   # prints `export` lines for a test session (eval them)
#
# Versions, ports and local dev credentials come from scripts/env.sh (RAGOPS_WEAVIATE_*, RAGOPS_MINIO_*).
# Data: $RAGOPS_LOCAL/weaviate, $RAGOPS_LOCAL/minio; pid files and logs: $RAGOPS_LOCAL/services/.
# Safe to re-run: a running, healthy server is left alone. Exit 3: Go is not installed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$RAGOPS_ROOT"

RUN="$RAGOPS_LOCAL/services"
mkdir -p "$RUN"
TIMEOUT="${RAGOPS_SERVICES_TIMEOUT:-180}"

say() { echo "[services] $*" >&2; }

find_go() {  # RAGOPS_GO: a go binary to use instead (set it to a missing path to act as if Go were absent)
  if [ -n "${RAGOPS_GO:-}" ]; then [ -x "$RAGOPS_GO" ] && echo "$RAGOPS_GO" || return 1
  elif command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else return 1; fi
}

gobin() {  # where `go install` puts binaries: $GOBIN, else $(go env GOPATH)/bin
  local go; go="$(find_go)" || { echo "${GOBIN:-$HOME/go/bin}"; return; }
  local dir; dir="$("$go" env GOBIN)"
  [ -n "$dir" ] && echo "$dir" || echo "$("$go" env GOPATH | cut -d: -f1)/bin"
}

# per service: module path to install, the binary's name, the pinned version, the main module
pkg_of() { case "$1" in weaviate) echo github.com/weaviate/weaviate/cmd/weaviate-server ;; minio) echo github.com/minio/minio ;; esac; }
mod_of() { case "$1" in weaviate) echo github.com/weaviate/weaviate ;; minio) echo github.com/minio/minio ;; esac; }
bin_of() { case "$1" in weaviate) echo "$(gobin)/weaviate-server" ;; minio) echo "$(gobin)/minio" ;; esac; }
version_of() { case "$1" in weaviate) echo "$RAGOPS_WEAVIATE_VERSION" ;; minio) echo "$RAGOPS_MINIO_VERSION" ;; esac; }
health_url() {
  case "$1" in
    weaviate) echo "$RAGOPS_WEAVIATE_URL/v1/.well-known/ready" ;;
    minio) echo "$RAGOPS_MINIO_URL/minio/health/live" ;;
  esac
}

built_version() {  # the main module's version recorded in the binary by the Go toolchain
  local go bin; bin="$(bin_of "$1")"
  [ -x "$bin" ] || return 0
  go="$(find_go)" || return 0
  "$go" version -m "$bin" 2>/dev/null | awk -v mod="$(mod_of "$1")" '$1 == "mod" && $2 == mod { print $3 }'
}

build() {
  local svc="$1" go want have start
  want="$(version_of "$svc")"
  have="$(built_version "$svc")"
  if [ "$have" = "$want" ]; then
    say "$svc $want already built ($(bin_of "$svc"))"
    return 0
  fi
  if ! find_go >/dev/null && [ -x "$(bin_of "$svc")" ]; then
    say "Go is not installed: using $(bin_of "$svc") as it is (its version cannot be checked)"
    return 0
  fi
  go="$(find_go)" || {
    say "!!! Go is not installed: cannot build $svc. Install Go (https://go.dev/dl/) to run the tests against a real $svc."
    return 3
  }
  say "building $svc $want with $("$go" version | cut -d' ' -f3) (first time: minutes; then Go's caches keep it) ..."
  start=$(date +%s)
  mkdir -p "$RUN"
  if ! "$go" install "$(pkg_of "$svc")@$want" >"$RUN/$svc-build.log" 2>&1; then
    tail -30 "$RUN/$svc-build.log" >&2
    say "building $svc failed; see $RUN/$svc-build.log"
    return 1
  fi
  say "built $svc $want in $(( $(date +%s) - start ))s: $(bin_of "$svc")"
}

pid_of() {  # the pid in the pid file, if that process is alive and is our binary
  local file="$RUN/$1.pid" pid
  [ -s "$file" ] || return 1
  pid="$(cat "$file")"
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(bin_of "$1")")" ] || return 1
  echo "$pid"
}

healthy() { curl -sf -o /dev/null --max-time 3 "$(health_url "$1")"; }

port_busy() {  # something listens on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

launch_weaviate() {
  local data="$RAGOPS_LOCAL/weaviate"
  mkdir -p "$data"
  # No modules: vectors come from ragops. API keys on, anonymous access off, the key's user is admin.
  # Cluster (memberlist gossip, Raft, Raft RPC) bound to loopback on ports of their own.
  env PERSISTENCE_DATA_PATH="$data" \
    DEFAULT_VECTORIZER_MODULE=none ENABLE_MODULES= API_BASED_MODULES_DISABLED=true \
    AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=false \
    AUTHENTICATION_APIKEY_ENABLED=true \
    AUTHENTICATION_APIKEY_ALLOWED_KEYS="$RAGOPS_WEAVIATE_API_KEY" \
    AUTHENTICATION_APIKEY_USERS=ragops \
    AUTHORIZATION_ADMINLIST_ENABLED=true AUTHORIZATION_ADMINLIST_USERS=ragops \
    GRPC_PORT="$RAGOPS_WEAVIATE_GRPC_PORT" \
    CLUSTER_HOSTNAME=ragops-local CLUSTER_BIND_ADDR=127.0.0.1 \
    CLUSTER_GOSSIP_BIND_PORT="${RAGOPS_WEAVIATE_GOSSIP_PORT:-7956}" \
    CLUSTER_DATA_BIND_PORT="${RAGOPS_WEAVIATE_DATA_PORT:-7957}" \
    RAFT_PORT="${RAGOPS_WEAVIATE_RAFT_PORT:-8310}" \
    RAFT_INTERNAL_RPC_PORT="${RAGOPS_WEAVIATE_RAFT_RPC_PORT:-8311}" \
    RAFT_BOOTSTRAP_EXPECT=1 \
    GO_PROFILING_DISABLE=true DISABLE_TELEMETRY=true PROMETHEUS_MONITORING_ENABLED=false \
    LOG_LEVEL="${RAGOPS_WEAVIATE_LOG_LEVEL:-warning}" LOG_FORMAT=text \
    setsid "$(bin_of weaviate)" --host 127.0.0.1 --port "$RAGOPS_WEAVIATE_PORT" --scheme http \
    </dev/null >>"$RUN/weaviate.log" 2>&1 9>&- &
  echo $! >"$RUN/weaviate.pid"
}

launch_minio() {
  local data="$RAGOPS_LOCAL/minio"
  mkdir -p "$data"
  env MINIO_ROOT_USER="$RAGOPS_MINIO_ROOT_USER" MINIO_ROOT_PASSWORD="$RAGOPS_MINIO_ROOT_PASSWORD" \
    MINIO_UPDATE=off MINIO_BROWSER="${RAGOPS_MINIO_BROWSER:-on}" \
    setsid "$(bin_of minio)" server --quiet --anonymous \
    --address "127.0.0.1:$RAGOPS_MINIO_PORT" --console-address "127.0.0.1:$RAGOPS_MINIO_CONSOLE_PORT" "$data" \
    </dev/null >>"$RUN/minio.log" 2>&1 9>&- &
  echo $! >"$RUN/minio.pid"
}

after_start() {  # what a fresh server needs before it is useful
  if [ "$1" = minio ]; then
    AWS_ACCESS_KEY_ID="$RAGOPS_MINIO_ROOT_USER" AWS_SECRET_ACCESS_KEY="$RAGOPS_MINIO_ROOT_PASSWORD" \
      python3 "$RAGOPS_ROOT/scripts/s3_bucket.py" "$RAGOPS_MINIO_URL" "$RAGOPS_MINIO_BUCKET"
  fi
}

start() {
  local svc="$1" pid t0 port
  if pid="$(pid_of "$svc")" && healthy "$svc"; then
    say "$svc already running (pid $pid): $(health_url "$svc")"
    after_start "$svc"
    return 0
  fi
  build "$svc" || return $?
  if [ -z "${pid:-}" ]; then
    port="$([ "$svc" = weaviate ] && echo "$RAGOPS_WEAVIATE_PORT" || echo "$RAGOPS_MINIO_PORT")"
    if port_busy "$port"; then
      say "cannot start $svc: 127.0.0.1:$port is taken by another process (not ours: no live pid in $RUN/$svc.pid)"
      return 1
    fi
    echo "---- $(date -u +%FT%TZ) start $svc $(version_of "$svc")" >>"$RUN/$svc.log"
    t0=$(date +%s.%N)
    "launch_$svc"
    pid="$(cat "$RUN/$svc.pid")"
  else
    t0=$(date +%s.%N)  # started earlier, not healthy yet: wait for it
  fi
  for _ in $(seq $((TIMEOUT * 4))); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$RUN/$svc.log" >&2
      rm -f "$RUN/$svc.pid"
      say "$svc exited during start-up; see $RUN/$svc.log"
      return 1
    fi
    if healthy "$svc"; then
      say "$svc $(version_of "$svc") healthy after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s (pid $pid): $(health_url "$svc")"
      after_start "$svc"
      return 0
    fi
    sleep 0.25
  done
  tail -30 "$RUN/$svc.log" >&2
  say "$svc not healthy after ${TIMEOUT}s; see $RUN/$svc.log (left running: pid $pid)"
  return 1
}

stop() {
  local svc="$1" pid
  if ! pid="$(pid_of "$svc")"; then
    rm -f "$RUN/$svc.pid"
    say "$svc not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$svc (pid $pid) ignored SIGTERM for 30s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$svc.pid"
  say "$svc stopped (pid $pid)"
}

status() {
  local svc="$1" pid
  if pid="$(pid_of "$svc")"; then
    if healthy "$svc"; then say "$svc running (pid $pid), healthy: $(health_url "$svc")"; return 0; fi
    say "$svc running (pid $pid), NOT healthy: $(health_url "$svc")"; return 1
  fi
  say "$svc stopped (built: $(built_version "$svc" || true); pinned: $(version_of "$svc"))"
  return 1
}

print_env() {
  case "$1" in
    weaviate)
      echo "export WEAVIATE_URL='$RAGOPS_WEAVIATE_URL'"
      echo "export WEAVIATE_GRPC_PORT='$RAGOPS_WEAVIATE_GRPC_PORT'"
      echo "export WEAVIATE_API_KEY='$RAGOPS_WEAVIATE_API_KEY'" ;;
    minio)
      echo "export MINIO_ENDPOINT_URL='$RAGOPS_MINIO_URL'"
      echo "export MINIO_ACCESS_KEY='$RAGOPS_MINIO_ROOT_USER'"
      echo "export MINIO_SECRET_KEY='$RAGOPS_MINIO_ROOT_PASSWORD'"
      echo "export MINIO_BUCKET='$RAGOPS_MINIO_BUCKET'" ;;
  esac
}

cmd="${1:-status}"
target="${2:-all}"
case "$target" in
  all) services=(weaviate minio) ;;
  weaviate|minio) services=("$target") ;;
  *) say "unknown service '$target': weaviate, minio or all"; exit 2 ;;
esac
case "$cmd" in
  build|start|stop|status) ;;
  env) for svc in "${services[@]}"; do print_env "$svc"; done; exit 0 ;;
  *) say "usage: $0 {build|start|stop|status|env} [weaviate|minio|all]"; exit 2 ;;
esac

# one build or start at a time (two test sessions starting the same server at once)
exec 9>"$RUN/.lock"
flock -w $((TIMEOUT + 1800)) 9

rc=0
for svc in "${services[@]}"; do
  "$cmd" "$svc" || { r=$?; [ "$r" -gt "$rc" ] && rc=$r; }
done
exit "$rc"

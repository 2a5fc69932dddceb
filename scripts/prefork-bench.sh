#!/usr/bin/env bash
# Measurements for the prefork chapter, on 127.0.0.1 only, with wrk and nginx from Debian's
# packages (`apt-get install -y wrk nginx`). Writes book/src/measured/prefork-bench.txt.
#
#   1. the kernel's spread of connections over workers blocking in accept, and with SO_REUSEPORT
#   2. throughput and p99 latency for 1, 2, 5, 10 workers on / and on /work?ms=20
#   3. prefork vs --model threads vs nginx, same number of workers, same-size response:
#      keep-alive with as many connections as workers, and `Connection: close`
#   4. wrk -c 50 (keep-alive) against 2 workers: the clients that wait
#   5. memory: 10 worker processes vs 10 worker threads (Pss from /proc/PID/smaps_rollup)
#
# Every server it starts is stopped on every way out (trap). About 2.5 minutes.
# Shorter runs for a quick try: DUR=1 ROUNDS=1 scripts/prefork-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1
DUR=${DUR:-3}          # seconds per wrk run
ROUNDS=${ROUNDS:-3}    # rounds of the prefork / threads / nginx comparison (the median is kept)
OUT=book/src/measured/prefork-bench.txt

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install -y wrk nginx)" >&2; exit 1; }
done
cargo build --release --quiet --bin prefork
BIN=target/release/prefork

TMP=$(mktemp -d /tmp/prefork-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    # nginx workers do not die with their master on SIGKILL: take them too.
    for c in $(pgrep -P "$p" 2>/dev/null || true); do kill -TERM "$c" 2>/dev/null || true; done
    kill -TERM "$p" 2>/dev/null || true
  done
  sleep 0.5
  for p in "${PIDS[@]}"; do
    for c in $(pgrep -P "$p" 2>/dev/null || true); do kill -KILL "$c" 2>/dev/null || true; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wrk prints one machine-readable line at the end (latencies in microseconds).
cat > "$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

# wrk_run URL CONNS [extra wrk args...] -> "rps p50_ms p99_ms requests connect read write status timeout"
wrk_run() {
  local url=$1 conns=$2; shift 2
  local threads=$(( conns < 2 ? 1 : 2 ))
  wrk -t"$threads" -c"$conns" -d"${DUR}s" --timeout 2s -s "$TMP/report.lua" "$@" "$url" \
    | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8, $9, $10}'
}

# start_prefork LOG ARGS... : start the server on port 0, set PORT and SERVER.
start_prefork() {
  local log=$1; shift
  "$BIN" --port 0 "$@" > "$log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 1 100); do
    PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" 2>/dev/null | head -1 | sed 's/.*://') || true
    [ -n "${PORT:-}" ] && curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    sleep 0.05
  done
  echo "error: prefork did not start: $(cat "$log")" >&2
  exit 1
}

# stop_server PID: SIGTERM, wait (bounded), SIGKILL if needed.
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The connections each worker served, from the "stopping: served N connections" lines.
per_worker() {
  grep -o 'served [0-9]* connections' "$1" | awk '{print $2}' | sort -rn | tr '\n' ' '
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

kernel=$(cat /proc/sys/kernel/osrelease)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
ncpu=$(nproc)
{
echo "\$ scripts/prefork-bench.sh"
echo "# recorded by \`scripts/prefork-bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), Linux $kernel, $ncpu x $cpu"
echo "# wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nginx -v 2>&1 | sed 's/.*: //'), ${DUR} s per run, loopback, server: target/release/prefork"
echo

echo "running (about 2.5 minutes) ..." >&2
echo "== 1. Spread of connections over 4 workers (Connection: close: one connection per request) =="
echo "connections each worker served, most first:"
for mode in shared reuseport; do
  for conns in 1 8; do
    extra=(); [ "$mode" = reuseport ] && extra=(--reuseport)
    start_prefork "$TMP/spread.log" --workers 4 "${extra[@]}"
    r=$(wrk_run "http://127.0.0.1:$PORT/" "$conns" -H "Connection: close")
    stop_server "$SERVER"
    printf "  %-26s wrk -c %-2s  %-26s (%s req/s)\n" \
      "$([ "$mode" = shared ] && echo 'one shared socket,' || echo 'SO_REUSEPORT, 4 sockets,')" "$conns" \
      "$(per_worker "$TMP/spread.log")" "$(echo "$r" | awk '{print $1}')"
  done
done
echo

echo "4 workers, 4 clients on /work?ms=20 (Connection: close): at most 200 req/s if no request waits behind another"
printf "  %-26s %9s %8s %8s\n" "" "req/s" "p50 ms" "p99 ms"
for mode in shared reuseport; do
  extra=(); [ "$mode" = reuseport ] && extra=(--reuseport)
  start_prefork "$TMP/spread.log" --workers 4 "${extra[@]}"
  read -r rps p50 p99 _ <<< "$(wrk_run "http://127.0.0.1:$PORT/work?ms=20" 4 -H "Connection: close")"
  stop_server "$SERVER"
  printf "  %-26s %9s %8s %8s\n" "$([ "$mode" = shared ] && echo 'one shared socket' || echo 'SO_REUSEPORT, 4 sockets')" "$rps" "$p50" "$p99"
done
echo

echo "== 2. Workers: throughput and latency, 10 clients (wrk -c 10, Connection: close) =="
printf "  %-14s %7s  %10s %9s %9s %8s\n" path workers "req/s" "p50 ms" "p99 ms" timeouts
for path in "/" "/work?ms=20"; do
  for n in 1 2 5 10; do
    start_prefork "$TMP/scale.log" --workers "$n"
    r=$(wrk_run "http://127.0.0.1:$PORT$path" 10 -H "Connection: close")
    stop_server "$SERVER"
    read -r rps p50 p99 _ _ _ _ _ tmo <<< "$r"
    printf "  %-14s %7s  %10s %9s %9s %8s\n" "$path" "$n" "$rps" "$p50" "$p99" "$tmo"
  done
done
echo

echo "== 3. prefork vs threads vs nginx: 2 workers, GET /, same body size =="
start_prefork "$TMP/probe.log" --workers 2
body=$(curl -s "http://127.0.0.1:$PORT/")
ours=$(curl -s -D - "http://127.0.0.1:$PORT/" | wc -c)
stop_server "$SERVER"
pad=$(( ${#body} - 7 ))           # "worker " + digits, and the newline curl's $() dropped
nbody="worker $(printf '%0*d' "$pad" 0)"
# start_nginx DIR PORT LISTEN_FLAGS: Debian's nginx with a config of our own in DIR.
start_nginx() {
  local dir=$1 port=$2 flags=$3
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port$flags;
    location / { default_type text/plain; return 200 "$nbody\n"; }
  }
}
EOF
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.05; done
  echo "error: nginx did not start: $(cat "$dir/error.log")" >&2
  exit 1
}
NPORT=$(free_port)
start_nginx "$TMP/nginx" "$NPORT" ""
RPORT=$(free_port)
start_nginx "$TMP/nginx-rp" "$RPORT" " reuseport"
theirs=$(curl -s -D - "http://127.0.0.1:$NPORT/" | wc -c)
echo "  body ${#body}+1 bytes for both; whole response: prefork $ours bytes, nginx $theirs bytes (nginx adds Server and Date)"
echo "  nginx: worker_processes 2, access_log off, keepalive_requests 1000000; nginx-rp: the same with listen ... reuseport"
echo "  $ROUNDS rounds, the servers interleaved; errors = connect + read + write + status + timeout"
printf "  %-38s %-9s %9s %8s %8s %7s\n" setting server "req/s" "p50 ms" "p99 ms" errors
declare -A RUNS
for round in $(seq 1 "$ROUNDS"); do
  for setting in keepalive close; do
    hdr=(); [ "$setting" = close ] && hdr=(-H "Connection: close")
    label=$([ "$setting" = close ] && echo "Connection: close, wrk -c 2" || echo "keep-alive, wrk -c 2")
    for server in prefork threads nginx nginx-rp; do
      case $server in
        prefork) start_prefork "$TMP/cmp.log" --workers 2; url="http://127.0.0.1:$PORT/" ;;
        threads) start_prefork "$TMP/cmp.log" --workers 2 --model threads; url="http://127.0.0.1:$PORT/" ;;
        nginx) url="http://127.0.0.1:$NPORT/" ;;
        nginx-rp) url="http://127.0.0.1:$RPORT/" ;;
      esac
      r=$(wrk_run "$url" 2 "${hdr[@]}")
      case $server in prefork | threads) stop_server "$SERVER" ;; esac
      read -r rps p50 p99 _ c rd w s tmo <<< "$r"
      printf "  %-38s %-9s %9s %8s %8s %7s\n" "$label (round $round)" "$server" "$rps" "$p50" "$p99" "$((c + rd + w + s + tmo))"
      RUNS[$setting,$server]="${RUNS[$setting,$server]:-} $rps"
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
for setting in keepalive close; do
  p=$(echo "${RUNS[$setting,prefork]}" | median); t=$(echo "${RUNS[$setting,threads]}" | median)
  n=$(echo "${RUNS[$setting,nginx]}" | median); r=$(echo "${RUNS[$setting,nginx-rp]}" | median)
  echo "  median of $ROUNDS, $setting: prefork $p, threads $t, nginx $n, nginx-rp $r req/s;" \
    "prefork / nginx = $(awk -v a="$p" -v b="$n" 'BEGIN {printf "%.2f", a / b}')," \
    "prefork / nginx-rp = $(awk -v a="$p" -v b="$r" 'BEGIN {printf "%.2f", a / b}')"
done
echo

echo "== 4. wrk -c 50 keep-alive against 2 workers, 5 s, timeout 2 s =="
for server in prefork nginx; do
  if [ "$server" = prefork ]; then
    start_prefork "$TMP/c50.log" --workers 2
    port=$PORT
  else
    port=$NPORT
  fi
  DUR=5 wrk_run "http://127.0.0.1:$port/" 50 > "$TMP/c50.out" &
  W=$!
  sleep 2.5
  # Recv-Q of a listening socket: connections the kernel completed that nobody accepted yet.
  q=$(ss -Hltn "sport = :$port" | awk '{s += $2} END {print s}')
  wait "$W"
  [ "$server" = prefork ] && stop_server "$SERVER"
  read -r rps p50 p99 reqs c rd w s tmo < "$TMP/c50.out"
  printf "  %-8s %6s requests, %6s req/s, p99 %7s ms; errors: connect %s, read %s, write %s, timeout %4s; accept queue at 2.5 s: %s\n" \
    "$server" "$reqs" "$rps" "$p99" "$c" "$rd" "$w" "$tmo" "$q"
done
echo

echo "== 5. Memory: 10 worker processes vs 10 worker threads, after 2 s of load =="
for model in process threads; do
  start_prefork "$TMP/mem.log" --workers 10 --model "$model"
  DUR=2 wrk_run "http://127.0.0.1:$PORT/" 10 -H "Connection: close" > /dev/null
  pids="$SERVER $( (pgrep -P "$SERVER" || true) | tr "\n" " ")"
  pss=0; rss=0
  for p in $pids; do
    pss=$(( pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup") ))
    rss=$(( rss + $(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup") ))
  done
  nproc_=$(echo "$pids" | wc -w)
  stop_server "$SERVER"
  echo "  --model $model: $nproc_ process(es), Pss summed $pss KiB (/10 = $(( pss / 10 )) KiB), Rss summed $rss KiB"
  eval "pss_$model=$pss"
done
echo "  Pss summed, processes / threads: $(awk -v p="$pss_process" -v t="$pss_threads" 'BEGIN {printf "%.2f", p / t}')"
} > "$TMP/out.txt"   # not a pipe: a pipeline's subshell would hide PIDS from the trap
cat "$TMP/out.txt"
cp "$TMP/out.txt" "$OUT"
echo "wrote $OUT" >&2

#!/usr/bin/env bash
# bench/run.sh — the load harness of issue 5: sessiongate next to a bare
# httputil.ReverseProxy, in the same run, on loopback. See bench/README.md.
#
#   bench/run.sh                      # every row, 15 s each: ~4 min on an idle machine (+~45 s the first time: minting)
#   DURATION=10 bench/run.sh
#   SCENARIOS="bare a b" RSS=off bench/run.sh
#
# Knobs (environment):
#   DURATION=15      seconds of each measured wrk run
#   WARMUP=2         seconds of warm-up before each measured run (same load)
#   CONNS=64 THREADS=1   wrk connections / threads
#   PACE_MS=0        > 0: paced load instead of saturation: every connection pauses PACE_MS ms on average (uniform 1..2*PACE_MS-1) after each answer
#                    (bench/wrk/pace.lua), so every row gets the same offered load, ~CONNS*1000/PACE_MS req/s;
#                    the latencies are then those of a proxy below its limit (use CONNS=64 PACE_MS=10: ~6,000 req/s)
#   SCENARIOS="bare bare-default a b c d a-async b-async"   rows to run, in this order (also: bare-same, bare-nopool;
#                    a-alt b-alt with ALT_BIN); a-async / b-async are (a) / (b) with log.async: true (buffered access log)
#   ALT_BIN=         a sessiongate binary of another revision: rows a-alt / b-alt run it like (a) / (b), and the
#                    memory measurement runs it too, so that two revisions are compared in one run (interleaved)
#   ALT_LABEL=alt    how the table names ALT_BIN
#   REPEAT=1         rounds of every row (interleaved); the table shows each row's median over the rounds
#   DISTURBED=5      a round during which other processes used >= this % of the machine is "disturbed":
#                    medians use only the undisturbed rounds of a row when it has any
#   RSS=on           measure idle RSS and RSS with RSS_TOKENS cached tokens
#   RSS_TOKENS=100000 TOKENS=10000 SESSIONS=100
#   ACCESS_LOG=on    sessiongate's access log (on is its default); written to a file, then deleted
#   KEEP_LOGS=0      1 keeps every process log in $BENCH_WORK/logs
#   PROFILE=0        1: sessiongate serves /debug/pprof/ (admin_pprof), the bare proxy its own, and each row
#                    takes a CPU profile over its measured run into $BENCH_WORK/profiles/<row>-r<round>.pprof
#   BUILD=1          0 reuses the binaries already in $BENCH_WORK/bin
#   PIN=auto         auto: pin when nproc >= 2; off: never
#   PROXY_CPUS=0     cores of the proxy under test (sessiongate or the bare proxy)
#   WRK_CPUS=1       cores of wrk (and of `benchenv send`)
#   ENV_CPUS=1       cores of benchenv (fake Clerk + upstream); default 1 on 2 cores, 2-(n-1) on more
#   PORT_BASE=27100  loopback ports PORT_BASE..PORT_BASE+4 (fake Clerk, upstream, bare proxy, sessiongate, its admin)
#   IDLE_WAIT=60     before each row, wait up to this many seconds for other processes' CPU load to drop
#   MINT_TIMEOUT=600 bound on benchenv's start (minting; ~45 s on 2 idle cores the first time)
#   BENCH_WORK=${TMPDIR:-/tmp}/sessiongate-bench   binaries, token files (reused across runs), logs
#
# Every process it starts is stopped on exit (trap), every wait is bounded,
# and everything listens on 127.0.0.1 only.
set -Eeuo pipefail
trap 'echo "run.sh: line $LINENO: a command failed (exit $?)" >&2' ERR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
SCENARIOS=${SCENARIOS:-"bare bare-default a b c d a-async b-async"}
RSS=${RSS:-on}
RSS_TOKENS=${RSS_TOKENS:-100000}
TOKENS=${TOKENS:-10000}
SESSIONS=${SESSIONS:-100}
ACCESS_LOG=${ACCESS_LOG:-on}
KEEP_LOGS=${KEEP_LOGS:-0}
PROFILE=${PROFILE:-0}
PACE_MS=${PACE_MS:-0}
export WRK_PACE_MS=$PACE_MS # read by bench/wrk/pace.lua and tokens.lua
REPEAT=${REPEAT:-1}
DISTURBED=${DISTURBED:-5}
BUILD=${BUILD:-1}
ALT_BIN=${ALT_BIN:-}
ALT_LABEL=${ALT_LABEL:-alt}
PIN=${PIN:-auto}
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/sessiongate-bench}

PORT_BASE=${PORT_BASE:-27100}
CLERK_ADDR=127.0.0.1:$PORT_BASE
UPSTREAM_ADDR=127.0.0.1:$((PORT_BASE + 1))
BARE_ADDR=127.0.0.1:$((PORT_BASE + 2))
GATE_ADDR=127.0.0.1:$((PORT_BASE + 3))
ADMIN_ADDR=127.0.0.1:$((PORT_BASE + 4))
IDLE_WAIT=${IDLE_WAIT:-60}
MINT_TIMEOUT=${MINT_TIMEOUT:-600}

NPROC=$(nproc)
if [[ $PIN == auto && $NPROC -ge 2 ]]; then
	PROXY_CPUS=${PROXY_CPUS:-0}
	WRK_CPUS=${WRK_CPUS:-1}
	if [[ $NPROC -eq 2 ]]; then ENV_CPUS=${ENV_CPUS:-1}; else ENV_CPUS=${ENV_CPUS:-2-$((NPROC - 1))}; fi
	PINNING="proxy under test on CPU $PROXY_CPUS; wrk and benchenv send on CPU $WRK_CPUS; benchenv (fake Clerk + upstream) on CPU $ENV_CPUS"
else
	PROXY_CPUS="" WRK_CPUS="" ENV_CPUS=""
	PINNING="none (nproc=$NPROC or PIN=$PIN): every process shares every core"
fi

for tool in wrk curl go awk; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
[[ -n $PROXY_CPUS ]] && { command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is required, or PIN=off" >&2; exit 1; }; }
[[ $DURATION =~ ^[0-9]+$ && $WARMUP =~ ^[0-9]+$ ]] || { echo "run.sh: DURATION and WARMUP are whole seconds" >&2; exit 2; }
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: REPEAT is a whole number >= 1" >&2; exit 2; }
if [[ -n $ALT_BIN ]]; then
	[[ -x $ALT_BIN ]] || { echo "run.sh: ALT_BIN $ALT_BIN is not an executable" >&2; exit 2; }
	ALT_BIN=$(cd "$(dirname "$ALT_BIN")" && pwd)/$(basename "$ALT_BIN")
fi

# Nothing from the caller's environment may change sessiongate's config.
for v in $(compgen -e); do
	case $v in CLERK_* | SESSIONGATE_*) unset "$v" ;; esac
done

mkdir -p "$WORK/bin" "$WORK/logs" "$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/$STAMP.md"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- processes

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# stop PID: SIGTERM, wait up to 10 s, then SIGKILL.
stop() {
	local pid=$1 keep=() p
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# wait_for URL SECONDS PID: until URL answers 200, or fail (the process died or time ran out).
wait_for() {
	local url=$1 secs=$2 pid=$3 deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of every thread
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# cpu_snapshot: "cpuN busy total" jiffies for each CPU, one line per CPU.
cpu_snapshot() { awk '/^cpu[0-9]+ / {idle = $5 + $6; t = 0; for (i = 2; i <= NF; i++) t += $i; print $1, t - idle, t}' /proc/stat; }
# all_cpu: "busy total" jiffies of the whole machine.
all_cpu() { awk '/^cpu / {idle = $5 + $6; t = 0; for (i = 2; i <= NF; i++) t += $i; print t - idle, t}' /proc/stat; }
# child_ticks VAR: sets VAR to the user+sys CPU of this shell's finished children (wrk runs as
# one), in clock ticks. Call it directly, not in $(...): times must run in this shell.
child_ticks() {
	times >"$WORK/.times"
	printf -v "$1" '%s' "$(awk -v hz="$CLK_TCK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
		printf "%.0f\n", t * hz }' "$WORK/.times")"
}
# wait_idle: before a row, wait (up to IDLE_WAIT s) until the machine is under 15 % busy:
# this harness may share the machine with builds and tests.
wait_idle() {
	local i=0 a b busy=0 deadline=$((SECONDS + IDLE_WAIT))
	for ((i = 0; i == 0 || SECONDS < deadline; i++)); do
		a=$(all_cpu)
		sleep 1
		b=$(all_cpu)
		busy=$(awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; printf "%.0f", t ? 100 * (y[1] - x[1]) / t : 0}')
		((busy < 15)) && return 0
		((i == 0)) && echo "   waiting up to ${IDLE_WAIT} s for other load to stop (machine ${busy} % busy)" >&2
	done
	echo "   WARNING: the machine is still ${busy} % busy; measuring anyway" >&2
}
# With PROFILE=1 the admin listener has a token (admin_pprof requires one); it is
# a throw-away value of this run, on loopback.
ADMIN_TOKEN=bench-admin-$$-$RANDOM
ADMIN_AUTH=()
[[ $PROFILE == 1 ]] && ADMIN_AUTH=(-H "Authorization: Bearer $ADMIN_TOKEN")
metric() { { curl -s --max-time 5 "${ADMIN_AUTH[@]}" "http://$ADMIN_ADDR/metrics" || true; } | awk -v m="$1" '$1 == m {printf "%.0f\n", $2; f = 1} END {if (!f) print 0}'; }

for addr in "$CLERK_ADDR" "$UPSTREAM_ADDR" "$BARE_ADDR" "$GATE_ADDR" "$ADMIN_ADDR"; do
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
		echo "run.sh: $addr is already in use (another process listens there); set PORT_BASE" >&2
		exit 1
	fi
done

# ---------------------------------------------------------------- build and environment

if [[ $BUILD == 1 || ! -x $WORK/bin/sessiongate || ! -x $WORK/bin/benchenv ]]; then
	echo "== building (go build) into $WORK/bin"
	go build -o "$WORK/bin/sessiongate" ./cmd/sessiongate
	go build -o "$WORK/bin/benchenv" ./bench/cmd/benchenv
else
	echo "== BUILD=0: reusing the binaries in $WORK/bin"
fi
BIN=$WORK/bin

echo "== starting benchenv (fake Clerk $CLERK_ADDR, upstream $UPSTREAM_ADDR); minting tokens on every core"
RSS_ARG=$RSS_TOKENS
[[ $RSS == on ]] || RSS_ARG=0
"$BIN/benchenv" env -out "$WORK" -clerk "$CLERK_ADDR" -upstream "$UPSTREAM_ADDR" -gate "$GATE_ADDR" -gate-admin "$ADMIN_ADDR" \
	-tokens "$TOKENS" -rss-tokens "$RSS_ARG" -sessions "$SESSIONS" >"$WORK/logs/benchenv.log" 2>&1 &
ENV_PID=$!
PIDS+=("$ENV_PID")
deadline=$((SECONDS + MINT_TIMEOUT)) # minting 100k tokens takes ~35 s on 2 idle cores
while ((SECONDS < deadline)); do
	grep -qx ready "$WORK/logs/benchenv.log" && break
	kill -0 "$ENV_PID" 2>/dev/null || { cat "$WORK/logs/benchenv.log" >&2; echo "run.sh: benchenv exited" >&2; exit 1; }
	sleep 0.1
done
grep -qx ready "$WORK/logs/benchenv.log" || { echo "run.sh: benchenv not ready after $MINT_TIMEOUT s" >&2; exit 1; }
grep '^benchenv:' "$WORK/logs/benchenv.log" || true
# Minting used every core; from now on benchenv (upstream + fake) keeps to its own.
if [[ -n $ENV_CPUS ]]; then taskset -a -p -c "$ENV_CPUS" "$ENV_PID" >/dev/null; fi

TOKEN=$(head -n1 "$WORK/token.txt")
TOKENS_FILE=$WORK/tokens-$TOKENS.txt
SESSIONS_FILE=$WORK/tokens-$SESSIONS-sessions.txt
ACCESS_YAML=true
[[ $ACCESS_LOG == on ]] || ACCESS_YAML=false
for name in sessiongate sessiongate-nocache sessiongate-sessions; do
	for async in false true; do
		{
			cat "$WORK/$name.yaml"
			printf 'log:\n  access: %s\n  async: %s\n' "$ACCESS_YAML" "$async"
			if [[ $PROFILE == 1 ]]; then printf 'admin_token: %s\nadmin_pprof: true\n' "$ADMIN_TOKEN"; fi
		} >"$WORK/run-$name$([[ $async == true ]] && echo -async).yaml"
	done
done

# ---------------------------------------------------------------- proxies under test

# start_gate ENVFILE YAML LOG [BINARY]: sessiongate serve, pinned; sets PROXY_PID.
start_gate() {
	local envfile=$1 yaml=$2 log=$3 bin=${4:-$BIN/sessiongate}
	(
		set -a
		# shellcheck disable=SC1090
		. "$envfile"
		set +a
		export SESSIONGATE_CONFIG=$yaml
		if [[ -n $PROXY_CPUS ]]; then exec taskset -c "$PROXY_CPUS" "$bin" serve; else exec "$bin" serve; fi
	) >"$log" 2>&1 &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	wait_for "http://$ADMIN_ADDR/readyz" 15 "$PROXY_PID" || { tail -n 20 "$log" >&2; return 1; }
}

# start_bare TRANSPORT POOL LOG [FLAGS...]: the bare proxy (benchenv proxy), pinned; sets PROXY_PID.
start_bare() {
	local cmd=("$BIN/benchenv" proxy -listen "$BARE_ADDR" -upstream "http://$UPSTREAM_ADDR" -transport "$1" -pool="$2" "${@:4}") log=$3
	# The bare proxy serves its profile where sessiongate's admin listener would be (not running then).
	[[ $PROFILE == 1 ]] && cmd+=(-pprof "$ADMIN_ADDR")
	if [[ -n $PROXY_CPUS ]]; then cmd=(taskset -c "$PROXY_CPUS" "${cmd[@]}"); fi
	"${cmd[@]}" >"$log" 2>&1 &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	wait_for "http://$BARE_ADDR/" 15 "$PROXY_PID" || { tail -n 20 "$log" >&2; return 1; }
}

# ---------------------------------------------------------------- wrk

to_ms() { # 850.00us | 3.10ms | 1.20s -> milliseconds
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "nan" }'
}

# run_wrk SECONDS URL [WRK OPTIONS...] [-- SCRIPT ARGS...] -> wrk's output on stdout, bounded.
run_wrk() {
	local secs=$1 url=$2 opts=() rest=()
	shift 2
	while (($#)); do
		if [[ $1 == -- ]]; then
			rest=("$@")
			break
		fi
		opts+=("$1")
		shift
	done
	if ((PACE_MS > 0)) && [[ " ${opts[*]} " != *" -s "* ]]; then opts+=(-s "$ROOT/bench/wrk/pace.lua"); fi
	local cmd=(wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency --timeout 5s "${opts[@]}" "$url" "${rest[@]}")
	if [[ -n $WRK_CPUS ]]; then cmd=(taskset -c "$WRK_CPUS" "${cmd[@]}"); fi
	timeout $((secs + 30)) "${cmd[@]}"
}

ROWS=() # "round|name|label|rps|p50|p90|p99|cpu_us|non2xx|sockerr|hit|requests|cpu0|cpu1|env_us|foreign|warn"
ROUND=1
declare -A SKIPPED=()

# measure NAME LABEL URL LOADARGS...: warm-up, then one measured wrk run.
measure() {
	local name=$1 label=$2 url=$3
	shift 3
	local gate=0
	[[ $url == "http://$GATE_ADDR/" ]] && gate=1
	echo "== $name: $label"
	wait_idle
	run_wrk "$WARMUP" "$url" "$@" >"$WORK/logs/$name.warmup.txt" 2>&1 || true

	local t0 e0 h0=0 m0=0 c0 a0 w0 t1 e1 h1=0 m1=0 c1 a1 w1 out
	if ((gate)); then h0=$(metric sessiongate_token_cache_hits_total); m0=$(metric sessiongate_token_cache_misses_total); fi
	c0=$(cpu_snapshot)
	a0=$(all_cpu)
	child_ticks w0
	t0=$(cpu_ticks "$PROXY_PID")
	e0=$(cpu_ticks "$ENV_PID")
	local prof_pid=
	if [[ $PROFILE == 1 ]]; then
		mkdir -p "$WORK/profiles"
		curl -s --max-time $((DURATION + 10)) "${ADMIN_AUTH[@]}" -o "$WORK/profiles/$name-r$ROUND.pprof" \
			"http://$ADMIN_ADDR/debug/pprof/profile?seconds=$((DURATION > 2 ? DURATION - 1 : 1))" &
		prof_pid=$!
	fi
	out=$(run_wrk "$DURATION" "$url" "$@" 2>&1) || { echo "$out" >&2; echo "run.sh: wrk failed" >&2; return 1; }
	if [[ -n $prof_pid ]]; then
		wait "$prof_pid" || echo "run.sh: the CPU profile of $name failed" >&2
		echo "== $name: CPU profile in $WORK/profiles/$name-r$ROUND.pprof (go tool pprof -top <file>)"
	fi
	t1=$(cpu_ticks "$PROXY_PID")
	e1=$(cpu_ticks "$ENV_PID")
	child_ticks w1
	a1=$(all_cpu)
	c1=$(cpu_snapshot)
	if ((gate)); then h1=$(metric sessiongate_token_cache_hits_total); m1=$(metric sessiongate_token_cache_misses_total); fi
	echo "$out" >"$WORK/logs/$name.wrk.txt"

	local rps reqs p50 p90 p99 non2xx sockerr
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p90=$(to_ms "$(awk '$1 == "90%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
	non2xx=${non2xx:-0}
	sockerr=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
	sockerr=${sockerr:-0}
	local cpu_us env_us hit cpu0 cpu1 foreign
	# CPU used by processes that are not part of the measurement, in % of the machine.
	foreign=$(awk -v a="$a0" -v b="$a1" -v ours=$(((t1 - t0) + (e1 - e0) + (w1 - w0))) 'BEGIN {
		split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; f = (y[1] - x[1]) - ours
		if (f < 0) f = 0
		printf "%.1f", t ? 100 * f / t : 0 }')
	cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", n ? d / hz / n * 1e6 : 0}')
	env_us=$(awk -v d=$((e1 - e0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", n ? d / hz / n * 1e6 : 0}')
	hit=$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN {if (h + m) printf "%.1f", 100 * h / (h + m); else print "-"}')
	read -r cpu0 cpu1 < <(paste <(echo "$c0") <(echo "$c1") | awk '{b = $5 - $2; t = $6 - $3; printf "%.0f ", t ? 100 * b / t : 0} END {print ""}')
	ROWS+=("$ROUND|$name|$label|$rps|$p50|$p90|$p99|$cpu_us|$non2xx|$sockerr|$hit|$reqs|$cpu0|${cpu1:--}|$env_us|$foreign|")
	printf '   %s req/s  p50 %s ms  p90 %s ms  p99 %s ms  CPU %s µs/req  non-2xx %s  socket errors %s  cache hits %s%%\n' \
		"$rps" "$p50" "$p90" "$p99" "$cpu_us" "$non2xx" "$sockerr" "$hit"
	if [[ $non2xx != 0 ]]; then
		echo "   WARNING: $non2xx non-2xx responses; a sample:" >&2
		local sample
		if [[ $* == *tokens.lua* ]]; then sample=$(head -n1 "${@: -2:1}"); else sample=$TOKEN; fi
		curl -s -i --max-time 2 -H "Authorization: Bearer $sample" "$url" | head -n 12 >&2 || true
	fi
}

# finish_proxy NAME LOG: stop the proxy, note its warn/error log lines, drop its (access) log.
finish_proxy() {
	local name=$1 log=$2 warn
	stop "$PROXY_PID"
	warn=$(grep -c '"level":"\(warn\|error\|fatal\|panic\)"' "$log" || true)
	if [[ $warn != 0 ]]; then
		echo "   $warn warn/error lines in the log; first ones:" >&2
		grep '"level":"\(warn\|error\|fatal\|panic\)"' "$log" | head -n 3 >&2
	fi
	local last=$((${#ROWS[@]} - 1))
	[[ $last -ge 0 && ${ROWS[$last]} == "$ROUND|$name|"* ]] && ROWS[$last]="${ROWS[$last]}$warn"
	[[ $KEEP_LOGS == 1 ]] || rm -f "$log"
}

# prefill FILE: send each token of FILE once, so that the measured run of (b) is the steady state
# of a busy sidecar (every token of the pool verified once, then served from the cache) whatever
# the warm-up's rate.
prefill() {
	local cmd=("$BIN/benchenv" send -url "$GATE_URL" -tokens "$1" -c 32 -timeout 120s) out
	if [[ -n $WRK_CPUS ]]; then cmd=(taskset -c "$WRK_CPUS" "${cmd[@]}"); fi
	out=$("${cmd[@]}") || { echo "$out" >&2; return 1; }
	echo "   prefill: $(head -n1 <<<"$out")"
}

AUTH=(-H "Authorization: Bearer $TOKEN")
LUA=$ROOT/bench/wrk/tokens.lua
GATE_URL="http://$GATE_ADDR/"
BARE_URL="http://$BARE_ADDR/"

for ((ROUND = 1; ROUND <= REPEAT; ROUND++)); do
((REPEAT > 1)) && echo "== round $ROUND of $REPEAT"
for s in $SCENARIOS; do
	log=$WORK/logs/$s.log
	case $s in
	bare)
		start_bare tuned true "$log"
		measure bare "bare ReverseProxy: proxy.NewTransport + buffer pool (sessiongate's set-up, no auth)" "$BARE_URL" "${AUTH[@]}"
		finish_proxy bare "$log"
		;;
	bare-nopool)
		start_bare tuned false "$log"
		measure bare-nopool "bare ReverseProxy: proxy.NewTransport, no buffer pool" "$BARE_URL" "${AUTH[@]}"
		finish_proxy bare-nopool "$log"
		;;
	bare-same)
		same=(-same-work)
		[[ $ACCESS_LOG == on ]] && same+=(-access-log "$WORK/logs/bare-same.access.log")
		start_bare tuned true "$log" "${same[@]}"
		measure bare-same "bare ReverseProxy + sessiongate's work besides authentication (its 8 upstream headers as constants, X-Request-Id, a JSON access line)" "$BARE_URL" "${AUTH[@]}"
		finish_proxy bare-same "$log"
		[[ $KEEP_LOGS == 1 ]] || rm -f "$WORK/logs/bare-same.access.log"
		;;
	bare-default)
		start_bare default false "$log"
		measure bare-default "bare ReverseProxy: Go defaults (default transport, no buffer pool; reference)" "$BARE_URL" "${AUTH[@]}"
		finish_proxy bare-default "$log"
		;;
	a)
		start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate.yaml" "$log"
		measure a "sessiongate (a) one token reused" "$GATE_URL" "${AUTH[@]}"
		finish_proxy a "$log"
		;;
	b)
		start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate.yaml" "$log"
		prefill "$TOKENS_FILE"
		measure b "sessiongate (b) $TOKENS tokens round-robin" "$GATE_URL" -s "$LUA" -- "$TOKENS_FILE" rr
		finish_proxy b "$log"
		;;
	a-async)
		start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate-async.yaml" "$log"
		measure a-async "sessiongate (a) one token reused, log.async" "$GATE_URL" "${AUTH[@]}"
		finish_proxy a-async "$log"
		;;
	b-async)
		start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate-async.yaml" "$log"
		prefill "$TOKENS_FILE"
		measure b-async "sessiongate (b) $TOKENS tokens round-robin, log.async" "$GATE_URL" -s "$LUA" -- "$TOKENS_FILE" rr
		finish_proxy b-async "$log"
		;;
	c)
		start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate-nocache.yaml" "$log"
		measure c "sessiongate (c) cache off: cold verify every request ($TOKENS tokens)" "$GATE_URL" -s "$LUA" -- "$TOKENS_FILE" rr
		finish_proxy c "$log"
		;;
	d)
		# The fake must serve the Backend API Sessions resource.
		sk=$(awk -F= '$1 == "CLERK_SECRET_KEY" {print $2}' "$WORK/sessiongate-sessions.env")
		sid=$(head -n1 "$SESSIONS_FILE" | cut -d. -f2 | tr '_-' '/+' | awk '{while (length($0) % 4) $0 = $0 "="; print}' |
			base64 -d 2>/dev/null | grep -o '"sid":"[^"]*"' | cut -d'"' -f4 || true)
		code=$(curl -s -o "$WORK/logs/session-probe.json" -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $sk" "http://$CLERK_ADDR/v1/sessions/$sid" || true)
		if [[ -z $sid || $code != 200 ]]; then
			echo "== d: skipped: the fake Clerk instance does not serve GET /v1/sessions/{id} (sid '$sid': HTTP $code: $(head -c 300 "$WORK/logs/session-probe.json"))" >&2
			SKIPPED[d]="the fake Clerk instance does not serve GET /v1/sessions/{id} (HTTP $code)"
			continue
		fi
		start_gate "$WORK/sessiongate-sessions.env" "$WORK/run-sessiongate-sessions.yaml" "$log"
		measure d "sessiongate (d) session_check cached, $SESSIONS sessions" "$GATE_URL" -s "$LUA" -- "$SESSIONS_FILE" rr
		finish_proxy d "$log"
		;;
	a-alt | b-alt)
		[[ -n $ALT_BIN ]] || { echo "run.sh: scenario $s needs ALT_BIN" >&2; exit 2; }
		start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate.yaml" "$log" "$ALT_BIN"
		if [[ $s == a-alt ]]; then
			measure a-alt "sessiongate (a) one token reused, $ALT_LABEL" "$GATE_URL" "${AUTH[@]}"
		else
			prefill "$TOKENS_FILE"
			measure b-alt "sessiongate (b) $TOKENS tokens round-robin, $ALT_LABEL" "$GATE_URL" -s "$LUA" -- "$TOKENS_FILE" rr
		fi
		finish_proxy "$s" "$log"
		;;
	*)
		echo "run.sh: unknown scenario $s (want bare bare-same bare-nopool bare-default a b c d a-async b-async a-alt b-alt)" >&2
		exit 2
		;;
	esac
done
done

# ---------------------------------------------------------------- RSS

# measure_rss NAME BINARY LABEL: idle RSS, then RSS after RSS_TOKENS distinct tokens; appends to RSS_LINES.
RSS_LINES=()
RSS_SEND=""
measure_rss() {
	local name=$1 bin=$2 label=$3 log=$WORK/logs/$1.log idle full hwm entries send_cmd send_out
	echo "== RSS ($label): idle, then after $RSS_TOKENS distinct tokens (each sent once)"
	start_gate "$WORK/sessiongate.env" "$WORK/run-sessiongate.yaml" "$log" "$bin"
	sleep 1
	idle=$(rss_kib "$PROXY_PID" VmRSS)
	send_cmd=("$BIN/benchenv" send -url "$GATE_URL" -tokens "$WORK/tokens-$RSS_TOKENS.txt" -c 32 -timeout 150s)
	if [[ -n $WRK_CPUS ]]; then send_cmd=(taskset -c "$WRK_CPUS" "${send_cmd[@]}"); fi
	send_out=$("${send_cmd[@]}") || { echo "$send_out" >&2; echo "run.sh: benchenv send failed" >&2; exit 1; }
	echo "   $send_out"
	sleep 1
	full=$(rss_kib "$PROXY_PID" VmRSS)
	hwm=$(rss_kib "$PROXY_PID" VmHWM)
	entries=$(metric sessiongate_token_cache_entries)
	finish_proxy "$name" "$log"
	RSS_LINES+=("$(printf '| %s | %s | %.1f | %.1f | %.1f | %s | %s |' "$label" "$RSS_TOKENS" "$(awk -v k="$idle" 'BEGIN {print k / 1024}')" \
		"$(awk -v k="$full" 'BEGIN {print k / 1024}')" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')" "$entries" \
		"$(awk -v a="$idle" -v b="$full" -v n="$entries" 'BEGIN {if (n) printf "%.0f", (b - a) * 1024 / n; else print "-"}')")")
	RSS_SEND=$(head -n1 <<<"$send_out")
}
if [[ $RSS == on ]]; then
	measure_rss rss "$BIN/sessiongate" sessiongate
	if [[ -n $ALT_BIN ]]; then measure_rss rss-alt "$ALT_BIN" "sessiongate, $ALT_LABEL"; fi
fi

# ---------------------------------------------------------------- report

# agg NAME FIELD [median|sum|min|max|clean]: a field (1-based, "|"-separated) over the rounds of a
# row. median, min and max use only the undisturbed rounds (other processes < DISTURBED % of the
# machine, field 16) when there is one; sum uses every round; clean counts the undisturbed rounds.
agg() {
	printf '%s\n' "${ROWS[@]}" | awk -F'|' -v n="$1" -v f="$2" -v op="${3:-median}" -v lim="$DISTURBED" '
		$2 == n { all[++na] = $0; if ($16 + 0 < lim) clean[++nc] = $0 }
		END {
			if (op == "clean") { print nc + 0 "/" na + 0; exit }
			if (op == "sum" || nc == 0) { for (i = 1; i <= na; i++) use[i] = all[i]; nu = na }
			else { for (i = 1; i <= nc; i++) use[i] = clean[i]; nu = nc }
			for (i = 1; i <= nu; i++) { split(use[i], x, "|"); if (x[f] != "" && x[f] != "-") v[++k] = x[f] + 0 }
			if (!k) { print "-"; exit }
			for (i = 2; i <= k; i++) { y = v[i]; for (j = i - 1; j >= 1 && v[j] > y; j--) v[j + 1] = v[j]; v[j + 1] = y }
			if (op == "sum") { t = 0; for (i = 1; i <= k; i++) t += v[i]; print t }
			else if (op == "min") print v[1]
			else if (op == "max") print v[k]
			else if (k % 2) print v[(k + 1) / 2]
			else print (v[k / 2] + v[k / 2 + 1]) / 2
		}'
}
NAMES=()
for r in "${ROWS[@]}"; do
	IFS='|' read -r _ name _ <<<"$r"
	[[ " ${NAMES[*]} " == *" $name "* ]] || NAMES+=("$name")
done
label_of() { local r n l; for r in "${ROWS[@]}"; do IFS='|' read -r _ n l _ <<<"$r"; [[ $n == "$1" ]] && { echo "$l"; return; }; done; }
# Fields: 4 rps, 5 p50, 6 p90, 7 p99, 8 cpu, 9 non2xx, 10 sockerr, 11 hit.
base_rps=$(agg bare 4) base_p99=$(agg bare 7) base_cpu=$(agg bare 8)
[[ $base_rps == - ]] && base_rps="" base_p99="" base_cpu=""
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a != "" && a != "-") printf "%.2f", a / b; else print "-"}'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN {if (b != "" && a != "" && a != "-") printf "%+.3f", a - b; else print "-"}'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {if (v == "-" || v == "") print "-"; else printf f, v}'; }

{
	echo "# sessiongate load harness — $STAMP"
	echo
	echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "- $(go version), $({ wrk -v 2>&1 || true; } | head -n1 | awk '{print "wrk", $2}')"
	echo "- machine: $NPROC × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
	echo "- pinning: $PINNING"
	if ((PACE_MS > 0)); then
		echo "- load: **paced**, \`WRK_PACE_MS=$PACE_MS wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s pace.lua\` (each connection pauses $PACE_MS ms after every answer: the same offered load of at most ~$((CONNS * 1000 / PACE_MS)) req/s on every row, below saturation) after ${WARMUP} s of warm-up; upstream body 200 bytes, keep-alive; loopback"
	else
		echo "- load: \`wrk -t$THREADS -c$CONNS -d${DURATION}s --latency\` after ${WARMUP} s of warm-up; upstream body 200 bytes, keep-alive; loopback"
	fi
	echo "- sessiongate: access log $ACCESS_LOG (to a file), cache.tokens 100000 except (c); tokens RS256, RSA-2048, with an active organization"
	if ((REPEAT > 1)); then
		echo "- $REPEAT rounds of every row, interleaved; each cell is the median over the rounds (non-2xx and socket errors: the sum)"
	fi
	echo
	if ((REPEAT > 1)); then
		echo "| row | req/s | req/s min–max | × bare | p50 ms | p90 ms | p99 ms | p99 added ms | CPU µs/req | × bare CPU | non-2xx | socket errors | cache hits % | undisturbed rounds |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	else
		echo "| row | req/s | × bare | p50 ms | p90 ms | p99 ms | p99 added ms | CPU µs/req | × bare CPU | non-2xx | socket errors | cache hits % | undisturbed |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	fi
	for name in "${NAMES[@]}"; do
		rps=$(agg "$name" 4) p50=$(agg "$name" 5) p90=$(agg "$name" 6) p99=$(agg "$name" 7) cpu=$(agg "$name" 8)
		spread=""
		((REPEAT > 1)) && spread=" $(fmt "$(agg "$name" 4 min)" %.0f)–$(fmt "$(agg "$name" 4 max)" %.0f) |"
		clean=$(agg "$name" 0 clean)
		((REPEAT == 1)) && { [[ $clean == 1/1 ]] && clean=yes || clean="**no**"; }
		printf '| %s | %s |%s %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label_of "$name")" "$(fmt "$rps" %.0f)" "$spread" \
			"$(ratio "$rps" "$base_rps")" "$(fmt "$p50" %.3f)" "$(fmt "$p90" %.3f)" "$(fmt "$p99" %.3f)" "$(added "$p99" "$base_p99")" \
			"$(fmt "$cpu" %.1f)" "$(ratio "$cpu" "$base_cpu")" "$(agg "$name" 9 sum)" "$(agg "$name" 10 sum)" "$(fmt "$(agg "$name" 11)" %.1f)" "$clean"
	done
	for k in "${!SKIPPED[@]}"; do echo "| ($k) skipped: ${SKIPPED[$k]} |  |  |  |  |  |  |  |  |  |  |  |"; done
	echo
	echo "CPU µs/req: user+sys CPU of the proxy process (all threads, /proc/<pid>/stat) during the measured run, divided by"
	echo "the requests wrk completed. × bare: ratio to the tuned bare proxy of this run. cache hits: verified-token cache"
	echo "hits / (hits + misses) over the measured run, from /metrics."
	echo
	echo "Diagnostics (is the proxy core the bottleneck? it should be ~100 % busy and the other core should not be):"
	echo
	echo "| row | round | requests | req/s | cpu0 busy % | cpu1 busy % | benchenv (upstream + fake) CPU µs/req | other processes, % of machine | warn/error log lines |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r round name _ rps _ _ _ _ _ _ _ reqs cpu0 cpu1 env_us foreign warn <<<"$r"
		printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s |\n' "$name" "$round" "$reqs" "$rps" "$cpu0" "$cpu1" "$env_us" "$foreign" "${warn:-0}"
	done
	echo
	echo "other processes: CPU the machine spent outside the proxy, benchenv and wrk during the measured run. At $DISTURBED % or"
	echo "more the round is disturbed (undisturbed column above): rerun, or use REPEAT=3. The harness waits up to IDLE_WAIT s"
	echo "for an idle machine before each row, then measures anyway."
	if ((${#RSS_LINES[@]})); then
		echo
		echo "Memory of sessiongate (VmRSS from /proc/<pid>/status; idle = ready, JWKS loaded, no request yet):"
		echo
		echo "| binary | cached tokens sent | idle RSS MiB | RSS after MiB | peak RSS (VmHWM) MiB | cache entries (/metrics) | bytes per entry (RSS delta) |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		printf '%s\n' "${RSS_LINES[@]}"
		echo
		echo "send: $RSS_SEND"
	fi
} | tee "$OUT"
echo
echo "written to $OUT"

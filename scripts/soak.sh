#!/usr/bin/env bash
# scripts/soak.sh — load and soak of the sessiongate binary on loopback
# (issue 6 §5). Not a unit test: it takes about 5 minutes.
#
#   scripts/soak.sh
#   DURATION=30 CONNS=128 scripts/soak.sh
#
# 1. builds sessiongate and bench/cmd/benchenv (the fake Clerk instance and
#    a keep-alive upstream, shared with bench/run.sh);
# 2. mints valid tokens (benchenv), correctly signed expired tokens (openssl,
#    with benchenv's signing key) and garbage tokens;
# 3. starts `sessiongate serve` (access log on, to a file) and records
#    go_goroutines and process_resident_memory_bytes from /metrics:
#    before, every SAMPLE seconds during each phase, and after;
# 4. phase 1: wrk, CONNS connections, DURATION s, one valid token: expects
#    zero non-2xx and zero socket errors;
# 5. phase 2: wrk, same load, a mix of valid (60 %), expired (20 %) and
#    garbage (20 %) tokens (scripts/soak/mix.lua), each kind on its own path
#    prefix so the access log tells which answer was for which kind: expects
#    every valid-token request answered 200 and every other one 401;
# 6. waits up to SETTLE s for goroutines and RSS to come back to the
#    baseline (idle upstream keep-alive connections hold two goroutines each
#    until the transport's 90 s idle timeout, so "after" is measured past it).
#
# Knobs: DURATION=60 CONNS=256 THREADS=2 SAMPLE=5 SETTLE=300 TOKENS=1000 IDLE_WAIT=60
#        PORT_BASE=27200 (fake Clerk, upstream, gate, admin: PORT_BASE..+3)
#        SOAK_WORK=${TMPDIR:-/tmp}/sessiongate-soak KEEP_LOGS=0
# Everything listens on 127.0.0.1; every process started here is stopped on
# exit (trap), every wait is bounded. Exit status: 0 when every expectation
# held, 1 otherwise (the report says which).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-60}
CONNS=${CONNS:-256}
THREADS=${THREADS:-2}
SAMPLE=${SAMPLE:-5}
SETTLE=${SETTLE:-300}
TOKENS=${TOKENS:-1000}
KEEP_LOGS=${KEEP_LOGS:-0}
IDLE_WAIT=${IDLE_WAIT:-60}
WORK=${SOAK_WORK:-${TMPDIR:-/tmp}/sessiongate-soak}
PORT_BASE=${PORT_BASE:-27200}
CLERK_ADDR=127.0.0.1:$PORT_BASE
UPSTREAM_ADDR=127.0.0.1:$((PORT_BASE + 1))
GATE_ADDR=127.0.0.1:$((PORT_BASE + 2))
ADMIN_ADDR=127.0.0.1:$((PORT_BASE + 3))

for tool in wrk curl go awk openssl base64; do
	command -v "$tool" >/dev/null || { echo "soak.sh: $tool is required" >&2; exit 1; }
done
[[ -f bench/cmd/benchenv/main.go ]] || { echo "soak.sh: bench/cmd/benchenv is required" >&2; exit 1; }
for v in $(compgen -e); do
	case $v in CLERK_* | SESSIONGATE_*) unset "$v" ;; esac
done
for addr in "$CLERK_ADDR" "$UPSTREAM_ADDR" "$GATE_ADDR" "$ADMIN_ADDR"; do
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
		echo "soak.sh: $addr is in use; set PORT_BASE" >&2
		exit 1
	fi
done

rm -rf "$WORK/logs"
mkdir -p "$WORK/bin" "$WORK/logs"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
	[[ $KEEP_LOGS == 1 ]] || rm -f "$WORK/logs/gate.log" "$WORK/logs/access-"*.log
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

wait_for() { # URL SECONDS PID
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true) == 200 ]] && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
metric() { # NAME -> value (integer) from the admin /metrics
	curl -s --max-time 2 "http://$ADMIN_ADDR/metrics" | awk -v m="$1" '$1 == m {printf "%.0f\n", $2; f = 1} END {if (!f) print "nan"}'
}
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
# memstats: the Go heap behind the RSS, to tell a leak (heap in use grows)
# from memory the runtime keeps (idle, not yet returned to the OS).
memstats() {
	curl -s --max-time 2 "http://$ADMIN_ADDR/metrics" | awk '
		$1 == "go_memstats_heap_inuse_bytes" {u = $2} $1 == "go_memstats_heap_idle_bytes" {i = $2}
		$1 == "go_memstats_heap_released_bytes" {r = $2} $1 == "go_memstats_stack_inuse_bytes" {s = $2}
		END {printf "heap in use %.1f MiB, heap idle %.1f MiB (released to the OS %.1f MiB), stacks %.1f MiB", u / 1048576, i / 1048576, r / 1048576, s / 1048576}'
}
sample() { # "goroutines rss_bytes"
	echo "$(metric go_goroutines) $(metric process_resident_memory_bytes)"
}
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
# all_cpu: "busy total" jiffies of the whole machine.
all_cpu() { awk '/^cpu / {idle = $5 + $6; t = 0; for (i = 2; i <= NF; i++) t += $i; print t - idle, t}' /proc/stat; }
# wait_idle: the machine may be shared (builds, tests): wait up to IDLE_WAIT s
# for it to be under 15 % busy before a phase, and say so when it is not.
wait_idle() {
	local i a b busy=0
	for ((i = 0; i < IDLE_WAIT; i++)); do
		a=$(all_cpu)
		sleep 1
		b=$(all_cpu)
		busy=$(awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; printf "%.0f", t ? 100 * (y[1] - x[1]) / t : 0}')
		((busy < 15)) && return 0
	done
	echo "   WARNING: the machine is still ${busy} % busy after ${IDLE_WAIT} s; measuring anyway" >&2
	REPORT_NOTE="measured while other processes used the machine (up to ${busy} % busy before a phase)"
}
REPORT_NOTE=""
FAILED=()
fail() { FAILED+=("$1"); echo "   FAIL: $1" >&2; }

# ---------------------------------------------------------------- build and environment

echo "== building sessiongate and benchenv into $WORK/bin"
go build -o "$WORK/bin/sessiongate" ./cmd/sessiongate
go build -o "$WORK/bin/benchenv" ./bench/cmd/benchenv

echo "== fake Clerk ($CLERK_ADDR) and upstream ($UPSTREAM_ADDR)"
"$WORK/bin/benchenv" env -out "$WORK" -clerk "$CLERK_ADDR" -upstream "$UPSTREAM_ADDR" -gate "$GATE_ADDR" -gate-admin "$ADMIN_ADDR" \
	-tokens "$TOKENS" -rss-tokens 0 -sessions 1 >"$WORK/logs/benchenv.log" 2>&1 &
ENV_PID=$!
PIDS+=("$ENV_PID")
for ((i = 0; i < 1200; i++)); do
	grep -qx ready "$WORK/logs/benchenv.log" && break
	kill -0 "$ENV_PID" 2>/dev/null || { cat "$WORK/logs/benchenv.log" >&2; exit 1; }
	sleep 0.1
done
grep -qx ready "$WORK/logs/benchenv.log" || { echo "soak.sh: benchenv not ready after 120 s" >&2; exit 1; }

VALID=$WORK/tokens-$TOKENS.txt
TOKEN=$(head -n1 "$WORK/token.txt")
ISSUER=$(awk -F= '$1 == "SESSIONGATE_ISSUER" {print $2}' "$WORK/sessiongate.env")
AZP=$(awk -F= '$1 == "SESSIONGATE_AUTHORIZED_PARTIES" {print $2}' "$WORK/sessiongate.env")

echo "== minting expired and garbage tokens"
# Expired: signed with the instance's own key (benchenv keeps it as a PKCS#1
# PEM with Kid/Alg headers), exp an hour ago: the Gate must answer
# token-expired, not token-invalid-signature.
KID=$(awk -F': ' '$1 == "Kid" {print $2}' "$WORK/signing-key.pem")
grep -v -e '^Kid:' -e '^Alg:' -e '^$' "$WORK/signing-key.pem" >"$WORK/soak-key.pem"
chmod 600 "$WORK/soak-key.pem"
EXPIRED=$WORK/expired.txt
: >"$EXPIRED"
now=$(date +%s)
HDR=$(printf '{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"%s","typ":"JWT"}' "$KID" | b64url)
for n in $(seq 1 50); do
	iat=$((now - 3600 - n))
	pay=$(printf '{"azp":"%s","exp":%d,"fva":[0,-1],"iat":%d,"iss":"%s","nbf":%d,"sid":"sess_soakexpired%d","sts":"active","sub":"user_soakexpired%d","v":2}' \
		"$AZP" $((iat + 60)) "$iat" "$ISSUER" $((iat - 5)) "$n" "$n" | b64url)
	sig=$(printf '%s.%s' "$HDR" "$pay" | openssl dgst -sha256 -sign "$WORK/soak-key.pem" -binary | b64url)
	echo "$HDR.$pay.$sig" >>"$EXPIRED"
done
rm -f "$WORK/soak-key.pem"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$CLERK_ADDR/.well-known/jwks.json" || true)
[[ $code == 200 ]] || { echo "soak.sh: the fake's JWKS answers $code" >&2; exit 1; }

GARBAGE=$WORK/garbage.txt
{
	for n in $(seq 1 20); do # random segments
		echo "$(head -c 40 /dev/urandom | b64url).$(head -c 200 /dev/urandom | b64url).$(head -c 256 /dev/urandom | b64url)"
	done
	head -n 20 "$VALID" | awk -F. '{print $1 "." $2 "." substr($3, 1, length($3) - 8)}' # truncated signatures
	head -n 20 "$VALID" | awk -F. '{print $1 "." $2}'                                  # two segments
	paste -d' ' <(head -n 20 "$VALID") <(head -n 20 "$EXPIRED") | awk '{split($1, a, "."); split($2, b, "."); print a[1] "." a[2] "." b[3]}' # spliced signature
	echo "not-a-token"
	printf '%s.%s.\n' "$(printf '{"alg":"none"}' | b64url)" "$(head -n1 "$VALID" | cut -d. -f2)"
} >"$GARBAGE"

# ---------------------------------------------------------------- sessiongate

echo "== sessiongate serve on $GATE_ADDR (admin $ADMIN_ADDR)"
printf 'cache:\n  tokens: 100000\nlog:\n  access: true\n' >"$WORK/soak.yaml"
(
	set -a
	# shellcheck disable=SC1091
	. "$WORK/sessiongate.env"
	set +a
	export SESSIONGATE_CONFIG=$WORK/soak.yaml
	exec "$WORK/bin/sessiongate" serve
) >"$WORK/logs/gate.log" 2>&1 &
GATE_PID=$!
PIDS+=("$GATE_PID")
wait_for "http://$ADMIN_ADDR/readyz" 15 "$GATE_PID" || { tail -n 20 "$WORK/logs/gate.log" >&2; exit 1; }
for kind in valid expired garbage; do # one of each, as a sanity check
	case $kind in valid) f=$VALID ;; expired) f=$EXPIRED ;; garbage) f=$GARBAGE ;; esac
	t=$(head -n1 "$f")
	printf '   %-8s -> %s\n' "$kind" \
		"$(curl -s -o /dev/null -w '%{http_code} %header{x-clerk-auth-reason}' --max-time 2 -H "Authorization: Bearer $t" "http://$GATE_ADDR/x" || true)"
done
sleep 2
read -r G0 R0 < <(sample)
echo "   before: goroutines $G0, RSS $(mib "$R0") MiB; $(memstats)"
M0=$(memstats)

# ---------------------------------------------------------------- phases

# sampler PHASE: goroutines and RSS every SAMPLE s into samples-PHASE.txt.
start_sampler() {
	(
		while kill -0 "$GATE_PID" 2>/dev/null; do
			sample
			sleep "$SAMPLE"
		done
	) >"$WORK/logs/samples-$1.txt" 2>/dev/null &
	SAMPLER=$!
	PIDS+=("$SAMPLER")
}
stop_sampler() {
	kill -TERM "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
}
peak() { awk 'BEGIN {g = 0; r = 0} $1 > g {g = $1} $2 > r {r = $2} END {print g, r}' "$WORK/logs/samples-$1.txt"; }
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
		else printf "nan" }'
}
# access log lines of the gate since byte offset $1 -> access-$2.log
cut_access() { tail -c +"$(($1 + 1))" "$WORK/logs/gate.log" | grep '"msg":"request"' >"$WORK/logs/access-$2.log" || true; }

REPORT=()
run_phase() { # NAME LABEL WRK-ARGS...
	local name=$1 label=$2 out off
	shift 2
	echo "== phase $name: $label — wrk -t$THREADS -c$CONNS -d${DURATION}s"
	wait_idle
	off=$(stat -c %s "$WORK/logs/gate.log")
	start_sampler "$name"
	out=$(timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency --timeout 10s "$@" 2>&1) || { echo "$out" >&2; fail "$name: wrk failed"; }
	stop_sampler
	echo "$out" >"$WORK/logs/wrk-$name.txt"
	sleep 1
	cut_access "$off" "$name"
	local rps reqs p50 p90 p99 non2xx sockerr gpk rpk
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p90=$(to_ms "$(awk '$1 == "90%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
	non2xx=${non2xx:-0}
	sockerr=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
	sockerr=${sockerr:-0}
	read -r gpk rpk < <(peak "$name")
	printf '   %s req/s (%s requests)  p50 %s ms  p90 %s ms  p99 %s ms  non-2xx %s  socket errors %s  peak goroutines %s  peak RSS %s MiB\n' \
		"$rps" "$reqs" "$p50" "$p90" "$p99" "$non2xx" "$sockerr" "$gpk" "$(mib "$rpk")"
	REPORT+=("| $name | $label | $rps | $p50 | $p90 | $p99 | $reqs | $non2xx | $sockerr | $gpk | $(mib "$rpk") |")
	PHASE_OUT=$out PHASE_NON2XX=$non2xx PHASE_SOCKERR=$sockerr
}

# Phase 1: one valid token.
run_phase valid "one valid token" -H "Authorization: Bearer $TOKEN" "http://$GATE_ADDR/soak"
[[ $PHASE_NON2XX == 0 ]] || fail "valid: $PHASE_NON2XX non-2xx responses"
[[ $PHASE_SOCKERR == 0 ]] || fail "valid: $PHASE_SOCKERR socket errors"
# wrk stops with a request in flight on some connections: those end as 499
# (client gone), at most one per connection, and are not errors.
gone=$(grep -c '"status":499' "$WORK/logs/access-valid.log" || true)
bad=$(grep -v -c '"status":\(200\|499\)' "$WORK/logs/access-valid.log" || true)
echo "   access log: $(grep -c '"status":200' "$WORK/logs/access-valid.log" || true) answered 200, $gone cut short by wrk stopping (499), $bad other"
[[ $bad == 0 ]] || fail "valid: $bad access-log lines with a status other than 200"
((gone <= CONNS)) || fail "valid: $gone requests ended 499, more than one per connection"

# Phase 2: the mix.
run_phase mix "60 % valid ($TOKENS tokens), 20 % expired, 20 % garbage" -s "$ROOT/scripts/soak/mix.lua" "http://$GATE_ADDR/" -- "$VALID" "$EXPIRED" "$GARBAGE" 60 20
[[ $PHASE_SOCKERR == 0 ]] || fail "mix: $PHASE_SOCKERR socket errors"
MIXLOG=$WORK/logs/access-mix.log
count() { grep -c "$1" "$MIXLOG" || true; }
gone=$(grep -c '"status":499' "$MIXLOG" || true) # cut short when wrk stopped (see above)
grep -v '"status":499' "$MIXLOG" >"$MIXLOG.done" || true
mv "$MIXLOG.done" "$MIXLOG"
v_all=$(count '"path":"/v/')
v_ok=$(grep '"path":"/v/' "$MIXLOG" | grep -c '"status":200' || true)
e_all=$(count '"path":"/e/')
e_ok=$(grep '"path":"/e/' "$MIXLOG" | grep '"status":401' | grep -c '"reason":"token-expired"' || true)
g_all=$(count '"path":"/g/')
g_ok=$(grep '"path":"/g/' "$MIXLOG" | grep -c '"status":401' || true)
other=$(grep -c -v '"status":\(200\|401\)' "$MIXLOG" || true)
((gone <= CONNS)) || fail "mix: $gone requests ended 499, more than one per connection"
g_reasons=$(grep '"path":"/g/' "$MIXLOG" | grep -o '"reason":"[^"]*"' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep = ", "}' | sed 's/"reason"://g; s/"//g')
echo "   $(grep '^mix sent' <<<"$PHASE_OUT" || echo "mix sent: (not reported)")"
echo "   access log ($gone cut short by wrk stopping, 499): valid $v_ok/$v_all answered 200; expired $e_ok/$e_all answered 401 token-expired; garbage $g_ok/$g_all answered 401 ($g_reasons); other statuses $other"
((v_all > 0 && v_ok == v_all)) || fail "mix: $((v_all - v_ok)) of $v_all valid-token requests not answered 200"
((e_all > 0 && e_ok == e_all)) || fail "mix: $((e_all - e_ok)) of $e_all expired-token requests not answered 401 token-expired"
((g_all > 0 && g_ok == g_all)) || fail "mix: $((g_all - g_ok)) of $g_all garbage requests not answered 401"
((other == 0)) || fail "mix: $other answers other than 200/401"
grep -q '"level":"\(error\|fatal\|panic\)"' "$WORK/logs/gate.log" && fail "error-level lines in the gate's log: $(grep -m1 '"level":"\(error\|fatal\|panic\)"' "$WORK/logs/gate.log")"

# ---------------------------------------------------------------- after

echo "== after: waiting up to ${SETTLE} s for goroutines and RSS to settle"
read -r G1 R1 < <(sample)
echo "   right after: goroutines $G1, RSS $(mib "$R1") MiB; $(memstats)"
M1=$(memstats)
GLIM=$((G0 + 5))
RLIM=$(awk -v r="$R0" 'BEGIN {l = r * 1.5; if (l < r + 16777216) l = r + 16777216; printf "%.0f", l}')
settled=0
for ((i = 0; i < SETTLE; i += 5)); do
	read -r G2 R2 < <(sample)
	if ((G2 <= GLIM && R2 <= RLIM)); then
		settled=1
		break
	fi
	sleep 5
done
read -r G2 R2 < <(sample)
M2=$(memstats)
echo "   after ${i} s idle: $M2"
echo "   after ${i} s idle: goroutines $G2 (baseline $G0, limit $GLIM), RSS $(mib "$R2") MiB (baseline $(mib "$R0"), limit $(mib "$RLIM"))"
((G2 <= GLIM)) || fail "goroutines did not come back to the baseline: $G2 > $GLIM"
((R2 <= RLIM)) || fail "RSS did not come back near the baseline: $(mib "$R2") MiB > $(mib "$RLIM") MiB"

echo
echo "| phase | load | req/s | p50 ms | p90 ms | p99 ms | requests | non-2xx | socket errors | peak goroutines | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${REPORT[@]}"
echo
echo "goroutines: before $G0, right after $G1, settled $G2; RSS MiB: before $(mib "$R0"), right after $(mib "$R1"), settled $(mib "$R2")"
echo "Go heap: before: $M0; right after: $M1; settled: $M2"
[[ -z $REPORT_NOTE ]] || echo "note: $REPORT_NOTE"
if ((${#FAILED[@]})); then
	echo "soak: FAILED:" >&2
	printf '  - %s\n' "${FAILED[@]}" >&2
	exit 1
fi
echo "soak: OK"

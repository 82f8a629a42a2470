#!/usr/bin/env bash
# bench/run.sh -- side-by-side latency/throughput benchmark of Bifrost-C.
#
# Run by `./build.sh bench` (which installs nginx, wrk and h2load and builds
# dist/bifrost first); it can also be run by hand. In one run, interleaved
# round by round (A B A B ...), it measures:
#   direct      the mock upstream itself (the floor)
#   nginx       nginx as a keep-alive reverse proxy in front of the mock
#   bifrost     dist/bifrost, governance off, request log store on (the default)
#   bifrost_nolog  the same with the request log store off (logs.enabled false)
#   bifrost_gov dist/bifrost with a virtual key, budget and rate limit
#   bifrost_gov_proc  the same with governance.durability "process": the last byte of
#               a response waits for the journal write, not its fdatasync
#   bifrost_gov_cluster  the same plus "cluster": every governed request is also
#               admitted by a Lua script in a redis-server the bench starts
#               (loopback, no persistence) -- governance in multi-node mode
#   portkey     Portkey's gateway (@portkey-ai/gateway from npm), if it installs
# and prints one markdown table of medians, also written to bench/RESULTS.md.
# See bench/README.md for the method, the CPU layout and the caveats.
#
# Environment knobs (defaults in brackets; QUICK=1 gives a ~1 minute smoke run):
#   ROUNDS [5, quick 1]          interleaved rounds; medians across rounds are quoted
#   SEQ_N/SEQ_W [3000/300]       sequential requests per round / warm-up (Portkey: a third)
#   WRK_SECS [3, quick 2]        seconds per wrk throughput run
#   RPS [5000] RPS_SECS [3]      open-loop rate and seconds (bench/lat open)
#   RPS_CONNS [64]               connection pool of the open loop
#   H2_SECS [2] H2_CONNS [50]    h2load --rps run at the same rate (bursty, see README)
#   STREAM_N [40, quick 10]      streamed requests per round
#   CHUNKS [20] CHUNK_US [1000]  mock SSE chunks and spacing
#   HOLD_CONNS [1000]            idle connections for the RSS figure
#   MOCK_CPU/GW_CPU/LOAD_CPU/SEQ_CPU   CPU pinning (see README); PIN=0 disables
#   BIFROST [$BIFROST_BIN or dist/bifrost]  the binary to measure
#   SKIP_PORTKEY=1               leave Portkey out
#   SKIP_CLUSTER=1               leave the bifrost+gov+cluster row (and redis-server) out
#   REDIS_CPU [= MOCK_CPU]       CPU pinning of the redis-server (an upstream, like the mock)
#   SKIP_TLS=1                   leave out the TLS rows (bench/tls.sh, run at the end)
#   BENCH_PORT_BASE [18400]      first port tried
set -Eeuo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
OUT=$BENCH/out
BUILD=$BENCH/build
LAT=$BUILD/lat
MOCK=$BUILD/mock
BIFROST=${BIFROST:-${BIFROST_BIN:-$ROOT/dist/bifrost}}
QUICK=${QUICK:-0}

if [[ $QUICK == 1 ]]; then
	: "${ROUNDS:=1}" "${SEQ_N:=1000}" "${SEQ_W:=200}" "${WRK_SECS:=2}" "${RPS_SECS:=2}" "${H2_SECS:=1}" "${STREAM_N:=10}"
else
	: "${ROUNDS:=5}" "${SEQ_N:=3000}" "${SEQ_W:=300}" "${WRK_SECS:=3}" "${RPS_SECS:=3}" "${H2_SECS:=2}" "${STREAM_N:=40}"
fi
: "${RPS:=5000}" "${RPS_CONNS:=64}" "${H2_CONNS:=50}" "${HOLD_CONNS:=1000}" "${CHUNKS:=20}" "${CHUNK_US:=1000}"
: "${SKIP_PORTKEY:=0}" "${SKIP_CLUSTER:=0}" "${PIN:=1}"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ processes
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
NEXT_PORT=${BENCH_PORT_BASE:-18400}

# errs LINE: errors + non2xx from a lat summary line
errs() { awk '{e=0; for(i=1;i<=NF;i++){n=index($i,"="); k=substr($i,1,n-1); if(k=="errors"||k=="non2xx") e+=substr($i,n+1)}} END{print e+0}' <<<"$1"; }
# kv KEY LINE: value of KEY=value in LINE
kv() { awk -v k="$1" '{for(i=1;i<=NF;i++){n=index($i,"="); if(substr($i,1,n-1)==k){print substr($i,n+1); exit}}}' <<<"$2"; }

# cpu_ticks PIDLIST(comma): utime+stime summed over the pids
cpu_ticks() {
	local total=0 p v
	for p in ${1//,/ }; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# ------------------------------------------------------------------ results
RAW=$OUT/raw.tsv
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }
get() { awk -F'\t' -v r="$1" -v t="$2" -v m="$3" '$1==r && $2==t && $3==m {v=$4} END{if(v!="")print v}' "$RAW"; }
# med TARGET METRIC: median over rounds ("" if none)
med() {
	awk -F'\t' -v t="$1" -v m="$2" '$2==t && $3==m && $4!="" {print $4}' "$RAW" | sort -g |
		awk '{a[NR]=$1} END{if(NR==0) exit; if(NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'
}
# vals TARGET METRIC: the per-round values, space-separated
vals() { awk -F'\t' -v t="$1" -v m="$2" '$1!="x" && $2==t && $3==m {printf "%s%s", s, $4; s=" "}' "$RAW"; }
# sumx TARGET METRIC: sum over all rounds
sumx() { awk -F'\t' -v t="$1" -v m="$2" '$2==t && $3==m {s+=$4} END{print s+0}' "$RAW"; }

# ------------------------------------------------------------------ setup
mkdir -p "$OUT" "$BUILD"
rm -rf "${OUT:?}"/*
: >"$RAW"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

for tool in gcc taskset ss awk; do command -v "$tool" >/dev/null || die "$tool not found"; done
log "building mock and lat into bench/build/"
gcc -O2 -Wall -o "$MOCK" "$BENCH/mock.c"
gcc -O2 -Wall -o "$LAT" "$BENCH/lat.c"

NCPU=$(nproc)
if [[ $PIN != 1 || $NCPU -lt 2 ]]; then
	: "${MOCK_CPU:=}" "${GW_CPU:=}" "${LOAD_CPU:=}" "${SEQ_CPU:=}"
elif ((NCPU == 2)); then
	# mock + load generators share CPU 0; the gateway has CPU 1 to itself
	# under load; the one-connection client sits with the gateway (see README).
	: "${MOCK_CPU:=0}" "${GW_CPU:=1}" "${LOAD_CPU:=0}" "${SEQ_CPU:=1}"
else
	: "${MOCK_CPU:=0}" "${GW_CPU:=1}" "${LOAD_CPU:=2-$((NCPU - 1))}" "${SEQ_CPU:=1}"
fi
# the cluster row's redis-server is an upstream too: it sits with the mock
: "${REDIS_CPU=$MOCK_CPU}"
log "CPUs: $NCPU; mock on [${MOCK_CPU:-any}], gateways on [${GW_CPU:-any}], wrk/h2load on [${LOAD_CPU:-any}], 1-conn client on [${SEQ_CPU:-any}]$([[ $SKIP_CLUSTER == 1 ]] || echo ", redis-server (cluster row) on [${REDIS_CPU:-any}]")"

HAVE_WRK=0 HAVE_H2LOAD=0 HAVE_NGINX=0
command -v wrk >/dev/null && HAVE_WRK=1
command -v h2load >/dev/null && HAVE_H2LOAD=1
command -v nginx >/dev/null && HAVE_NGINX=1
((HAVE_WRK)) || log "wrk not found: throughput rows will be n/a"
((HAVE_H2LOAD)) || log "h2load not found: open-loop rows will be n/a"

# ---- the mock upstream
alloc_port
MOCK_PORT=$PORT
start_bg mock "$MOCK_CPU" "$MOCK" -p "$MOCK_PORT" -n "$CHUNKS" -i "$CHUNK_US"
MOCK_PID=$LAST_PID
wait_port "$MOCK_PID" "$MOCK_PORT" 5 || die "mock did not start: $(cat "$OUT/mock.log")"

# ---- targets
TARGETS_ALL=(direct nginx bifrost bifrost_nolog bifrost_gov bifrost_gov_proc bifrost_gov_cluster portkey)
declare -A T_PORT T_PIDS T_STATE T_MODEL T_AUTH T_NOTE T_LABEL
T_LABEL=([direct]="direct (mock)" [nginx]="nginx" [bifrost]="bifrost" [bifrost_nolog]="bifrost, logs off" [bifrost_gov]="bifrost+gov" [bifrost_gov_proc]="bifrost+gov, durability process" [bifrost_gov_cluster]="bifrost+gov+cluster" [portkey]="portkey")
for t in "${TARGETS_ALL[@]}"; do
	T_STATE[$t]="n/a"
	T_MODEL[$t]="gpt-4o"
	T_AUTH[$t]="Bearer sk-bench"
	T_NOTE[$t]=""
	T_PIDS[$t]=""
done
T_STATE[direct]=ok
T_PORT[direct]=$MOCK_PORT
T_PIDS[direct]=$MOCK_PID

write_bodies() { # TARGET
	local t=$1 m=${T_MODEL[$1]}
	printf '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0}' "$m" >"$OUT/body_$t.json"
	printf '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' "$m" >"$OUT/sbody_$t.json"
	{
		printf 'local f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\n' "$OUT/body_$t.json"
		printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
		local h
		while IFS= read -r h; do
			[[ -n $h ]] || continue
			printf 'wrk.headers["%s"] = "%s"\n' "${h%%: *}" "${h#*: }"
		done < <(hdr_lines "$t")
	} >"$OUT/wrk_$t.lua"
}

# hdr_lines TARGET: extra request headers, one per line
hdr_lines() {
	local t=$1
	[[ -n ${T_AUTH[$t]} ]] && printf 'Authorization: %s\n' "${T_AUTH[$t]}"
	if [[ $t == portkey* ]]; then
		printf 'x-portkey-provider: openai\n'
		printf 'x-portkey-custom-host: http://127.0.0.1:%s/v1\n' "$MOCK_PORT"
	fi
	return 0
}
HDRS=()
hdr_args() {
	HDRS=()
	local h
	while IFS= read -r h; do [[ -n $h ]] && HDRS+=(-H "$h"); done < <(hdr_lines "$1")
	return 0
}

# probe TARGET: one non-streamed chat completion must answer 200
probe() {
	local t=$1 r
	hdr_args "$t"
	r=$("$LAT" once -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/body_$t.json" -v 2>&1 | head -c 600) || true
	if [[ $(head -1 <<<"$r") == status=200 ]]; then return 0; fi
	T_NOTE[$t]="probe answered $(head -1 <<<"$r"): $(tail -n +2 <<<"$r" | tr '\n' ' ' | head -c 200)"
	return 1
}

write_bodies direct

# launch TARGET: (re)start TARGET's process on T_PORT[TARGET] and set T_PIDS;
# fails if the port does not answer in time. Restarts get their own log file.
declare -A T_RESTARTS T_LOG LAST_PHASE
launch() {
	local t=$1 port=${T_PORT[$1]} name=$1 n=${T_RESTARTS[$1]:-0} secs=10
	((n > 0)) && name="$t.restart$n"
	case $t in
	nginx) start_nginx "$name" "$port" ;;
	bifrost) start_bifrost "$name" "$port" 0 ;;
	bifrost_nolog) start_bifrost "$name" "$port" 0 false ;;
	bifrost_gov) start_bifrost "$name" "$port" 1 ;;
	bifrost_gov_proc) start_bifrost "$name" "$port" process ;;
	bifrost_gov_cluster) start_bifrost "$name" "$port" 1 true "$REDIS_PORT" ;;
	portkey)
		start_bg "$name" "$GW_CPU" env NODE_ENV=production node "$PK_JS" "--port=$port" --headless
		secs=30
		;;
	*) return 1 ;;
	esac
	T_LOG[$t]=$OUT/$name.log
	wait_port "$LAST_PID" "$port" "$secs" || return 1
	if [[ $t == nginx ]]; then
		sleep 0.2
		T_PIDS[$t]=$(nginx_pids "$LAST_PID")
	else
		T_PIDS[$t]=$LAST_PID
	fi
}

# ---- nginx
start_nginx() { # NAME PORT -> LAST_PID
	nginx_proxy_start "$1" "        listen 127.0.0.1:$2 backlog=4096;"
}

if ((HAVE_NGINX)); then
	alloc_port
	T_PORT[nginx]=$PORT
	write_bodies nginx
	if launch nginx; then
		if probe nginx; then T_STATE[nginx]=ok; fi
	else
		T_NOTE[nginx]="nginx did not start: $(tail -3 "$OUT/nginx.log" "$OUT/nginx/error.log" 2>/dev/null | tr '\n' ' ')"
	fi
else
	T_NOTE[nginx]="nginx not installed"
fi

# ---- bifrost (governance off, logs on; logs off; governance on; governance + cluster)
REDIS_PORT='' REDIS_PID='' REDIS_VERSION=''
# clu_metric NAME: a metric of bifrost+gov+cluster's GET /metrics ("" if absent)
clu_metric() {
	timeout 5 "$LAT" once -p "${T_PORT[bifrost_gov_cluster]}" -P /metrics -M GET -v 2>/dev/null |
		awk -v k="$1" '$1 == k {print $2; exit}' || true
}
# cluster_up: bifrost+gov+cluster says its last exchange with Redis worked (waits about 5 s)
CLU_UP=
cluster_up() {
	local end=$((SECONDS + 5))
	while ((SECONDS < end)); do
		CLU_UP=$(clu_metric bifrost_cluster_redis_up)
		[[ $CLU_UP == 1 ]] && return 0
		alive "${T_PIDS[bifrost_gov_cluster]}" || return 1
		sleep 0.1
	done
	return 1
}
# redis_cmdstat CMD FIELD: FIELD (calls, usec_per_call) of CMD in Redis's INFO commandstats
redis_cmdstat() {
	redis_cmd "$REDIS_PORT" INFO commandstats 2>/dev/null |
		awk -F'[:,=\r]' -v c="cmdstat_$1" -v f="$2" '$1 == c { for (i = 2; i < NF; i += 2) if ($i == f) { print $(i + 1); exit } }' || true
}
redis_evalsha() { local v; v=$(redis_cmdstat evalsha calls); echo "${v:-0}"; }

write_bifrost_cfg() { # FILE GOV(0, 1 or a governance.durability) LOGS(true/false) [REDIS_PORT: the cluster block]
	local cluster="" durability=""
	[[ $2 == 0 || $2 == 1 ]] || durability=",\"durability\":\"$2\""
	if [[ -n ${4:-} ]]; then
		cluster=",
 \"cluster\":{\"redis\":\"redis://127.0.0.1:$4\",\"key_prefix\":\"bifrost:\",\"node_id\":\"n1\"}"
	fi
	if [[ $2 != 0 ]]; then
		cat >"$1" <<EOF
{"providers":[{"name":"mock","provider":"openai","base_url":"http://127.0.0.1:$MOCK_PORT/v1","apiKey":"sk-bench"}],
 "log_requests":false, "logs":{"enabled":$3},
 "governance":{"enforce":true$durability,"virtual_keys":[{"id":"b","value":"sk-bf-bench","budget":{"max_limit":1000000,"reset_duration":"1d"},"rate_limit":{"request_max_limit":100000000,"request_reset_duration":"1m"}}]}$cluster}
EOF
	else
		cat >"$1" <<EOF
{"providers":[{"name":"mock","provider":"openai","base_url":"http://127.0.0.1:$MOCK_PORT/v1","apiKey":"sk-bench"}],"log_requests":false,
 "logs":{"enabled":$3}}
EOF
	fi
}
start_bifrost() { # NAME PORT GOV [LOGS(true)] [REDIS_PORT] -> LAST_PID
	write_bifrost_cfg "$OUT/$1.json" "$3" "${4:-true}" "${5:-}"
	# its own data_dir (logs.db, governance journal) under bench/out/, never ./data
	start_bg "$1" "$GW_CPU" "$BIFROST" -c "$OUT/$1.json" -l "127.0.0.1:$2" -w 1 -d "$OUT/data_${1%%.*}"
}

METRICS_OK=0
BIFROST_VERSION=
if [[ -x $BIFROST ]]; then
	# measure a private copy: a rebuild during the run must not change the binary under test
	cp "$BIFROST" "$OUT/bifrost.bin"
	BIFROST=$OUT/bifrost.bin
	BIFROST_VERSION=$("$BIFROST" --version 2>&1 | head -1) || true
	alloc_port
	T_PORT[bifrost]=$PORT
	T_MODEL[bifrost]="mock/gpt-4o"
	write_bodies bifrost
	if launch bifrost; then
		if probe bifrost; then T_STATE[bifrost]=ok; fi
		m=$("$LAT" once -p "$PORT" -P /metrics -M GET -v 2>/dev/null || true)
		if [[ $(head -1 <<<"$m") == status=200 ]] && grep -q '^bifrost_overhead_seconds_bucket' <<<"$m"; then
			METRICS_OK=1
		else
			log "bifrost: GET /metrics has no bifrost_overhead_seconds histogram ($(head -1 <<<"$m"))"
		fi
	else
		T_NOTE[bifrost]="dist/bifrost did not start: $(tail -5 "$OUT/bifrost.log" | tr '\n' ' ')"
	fi

	alloc_port
	T_PORT[bifrost_nolog]=$PORT
	T_MODEL[bifrost_nolog]="mock/gpt-4o"
	write_bodies bifrost_nolog
	if launch bifrost_nolog; then
		if probe bifrost_nolog; then T_STATE[bifrost_nolog]=ok; fi
	else
		T_NOTE[bifrost_nolog]="dist/bifrost did not start with logs off: $(tail -5 "$OUT/bifrost_nolog.log" | tr '\n' ' ')"
	fi

	alloc_port
	T_PORT[bifrost_gov]=$PORT
	T_MODEL[bifrost_gov]="mock/gpt-4o"
	T_AUTH[bifrost_gov]="Bearer sk-bf-bench"
	write_bodies bifrost_gov
	if launch bifrost_gov; then
		noauth=$("$LAT" once -p "$PORT" -B "$OUT/body_bifrost_gov.json" | head -1) || true
		if [[ $noauth != status=401 ]]; then
			T_NOTE[bifrost_gov]="no governance in this build (a request without a virtual key got ${noauth#status=}, not 401)"
			stop_pid "$LAST_PID"
		elif probe bifrost_gov; then
			T_STATE[bifrost_gov]=ok
		else
			T_NOTE[bifrost_gov]="with the virtual key: ${T_NOTE[bifrost_gov]}"
		fi
	else
		T_NOTE[bifrost_gov]="no governance in this build (bifrost did not start with the governance config: $(tail -3 "$OUT/bifrost_gov.log" | tr '\n' ' '))"
	fi

	# bifrost+gov, durability process: the same governance, no fdatasync before the last byte
	alloc_port
	T_PORT[bifrost_gov_proc]=$PORT
	T_MODEL[bifrost_gov_proc]="mock/gpt-4o"
	T_AUTH[bifrost_gov_proc]="Bearer sk-bf-bench"
	write_bodies bifrost_gov_proc
	if [[ ${T_STATE[bifrost_gov]} != ok ]]; then
		T_NOTE[bifrost_gov_proc]="skipped: bifrost+gov is n/a"
	elif ! launch bifrost_gov_proc; then
		T_NOTE[bifrost_gov_proc]="bifrost did not start with governance.durability \"process\": $(tail -3 "$OUT/bifrost_gov_proc.log" | tr '\n' ' ')"
	elif probe bifrost_gov_proc; then
		T_STATE[bifrost_gov_proc]=ok
	fi

	# bifrost+gov+cluster: the same governance, every admission also through Redis
	if [[ $SKIP_CLUSTER == 1 ]]; then
		T_NOTE[bifrost_gov_cluster]="skipped (SKIP_CLUSTER=1)"
	elif ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		T_NOTE[bifrost_gov_cluster]="skipped: redis-server/redis-cli not installed (apt-get install redis-server)"
	elif [[ ${T_STATE[bifrost_gov]} != ok ]]; then
		T_NOTE[bifrost_gov_cluster]="skipped: bifrost+gov is n/a"
	else
		alloc_port
		REDIS_PORT=$PORT
		if ! redis_start redis "$REDIS_CPU" "$REDIS_PORT"; then
			T_NOTE[bifrost_gov_cluster]="redis-server did not start: $(tail -3 "$OUT/redis.log" | tr '\n' ' ')"
		else
			REDIS_PID=$LAST_PID
			REDIS_VERSION=$(redis-server --version 2>/dev/null | awk '{sub(/^v=/, "", $3); print $3}') || true
			alloc_port
			T_PORT[bifrost_gov_cluster]=$PORT
			T_MODEL[bifrost_gov_cluster]="mock/gpt-4o"
			T_AUTH[bifrost_gov_cluster]="Bearer sk-bf-bench"
			write_bodies bifrost_gov_cluster
			if ! launch bifrost_gov_cluster; then
				T_NOTE[bifrost_gov_cluster]="bifrost did not start with the cluster config: $(tail -3 "$OUT/bifrost_gov_cluster.log" | tr '\n' ' ')"
			elif ! cluster_up; then
				T_NOTE[bifrost_gov_cluster]="no cluster in this build, or Redis not reached (GET /metrics: bifrost_cluster_redis_up ${CLU_UP:-absent} after 5 s)"
				stop_pid "$LAST_PID"
			elif ! probe bifrost_gov_cluster; then
				T_NOTE[bifrost_gov_cluster]="with the virtual key: ${T_NOTE[bifrost_gov_cluster]}"
			elif (($(redis_evalsha) == 0)); then
				T_NOTE[bifrost_gov_cluster]="the probe was admitted without a Redis EVALSHA: not cluster admission"
				stop_pid "$LAST_PID"
			else
				T_STATE[bifrost_gov_cluster]=ok
			fi
		fi
	fi
else
	T_NOTE[bifrost]="$BIFROST not built"
	T_NOTE[bifrost_nolog]="$BIFROST not built"
	T_NOTE[bifrost_gov]="$BIFROST not built"
	T_NOTE[bifrost_gov_proc]="$BIFROST not built"
	T_NOTE[bifrost_gov_cluster]="$BIFROST not built"
fi

# ---- Portkey
PORTKEY_VERSION=
if [[ $SKIP_PORTKEY == 1 ]]; then
	T_NOTE[portkey]="skipped (SKIP_PORTKEY=1)"
elif ! command -v node >/dev/null; then
	T_NOTE[portkey]="node not installed"
else
	PK_JS=$BENCH/node_modules/@portkey-ai/gateway/build/start-server.js
	if [[ ! -f $PK_JS ]] && command -v npm >/dev/null; then
		log "installing @portkey-ai/gateway into bench/node_modules"
		if [[ -f $BENCH/package-lock.json ]]; then npm_cmd=ci; else npm_cmd=install; fi
		(cd "$BENCH" && timeout 300 npm "$npm_cmd" --no-audit --no-fund --ignore-scripts) >"$OUT/npm.log" 2>&1 ||
			log "npm $npm_cmd failed (see bench/out/npm.log)"
	fi
	if [[ -f $PK_JS ]]; then
		PORTKEY_VERSION=$(awk -F'"' '/"version"/{print $4; exit}' "$BENCH/node_modules/@portkey-ai/gateway/package.json")
		alloc_port
		T_PORT[portkey]=$PORT
		write_bodies portkey
		if launch portkey; then
			if probe portkey; then T_STATE[portkey]=ok; fi
		else
			T_NOTE[portkey]="did not start: $(tail -5 "$OUT/portkey.log" | tr '\n' ' ' | head -c 300)"
		fi
	else
		T_NOTE[portkey]="@portkey-ai/gateway could not be installed (see bench/out/npm.log)"
	fi
fi

ACTIVE=()
for t in "${TARGETS_ALL[@]}"; do
	if [[ ${T_STATE[$t]} == ok ]]; then
		ACTIVE+=("$t")
	else
		[[ -n ${T_NOTE[$t]} ]] || T_NOTE[$t]="not available"
		log "$t: n/a -- ${T_NOTE[$t]}"
	fi
done
log "targets: ${ACTIVE[*]}"

# record the CPU affinity every gateway thread really has (a program may re-pin itself)
declare -A T_AFFINITY
for t in "${ACTIVE[@]}"; do
	aff=""
	for p in ${T_PIDS[$t]//,/ }; do
		aff+=$(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^Cpus_allowed_list/{print $2}' | sort -u | paste -sd/ -)" " || true
	done
	T_AFFINITY[$t]=${aff% }
done
REDIS_AFFINITY=''
if [[ -n $REDIS_PID ]]; then
	REDIS_AFFINITY=$(cat /proc/"$REDIS_PID"/task/*/status 2>/dev/null | awk '/^Cpus_allowed_list/{print $2}' | sort -u | paste -sd/ -) || true
fi

# ------------------------------------------------------------------ phases
# phase_fail TARGET TEXT: remember (once) that a phase failed for TARGET
phase_fail() {
	local t=$1 msg=$2
	[[ ${T_NOTE[$t]} == *"$msg"* ]] && return 0
	T_NOTE[$t]="${T_NOTE[$t]:+${T_NOTE[$t]}; }$msg"
	log "$t: $msg"
}

# ensure_healthy TARGET: before each phase, the target must be alive and answer
# one chat completion 200; if not, the failure is noted (it is a finding) and
# the target is restarted so that the remaining phases still measure something.
MAX_RESTARTS=${MAX_RESTARTS:-10}
ensure_healthy() {
	local t=$1 when=${LAST_PHASE[$1]:-start-up} p rc dead="" r st msg n
	if [[ $t == direct ]]; then
		if ! alive "$MOCK_PID"; then
			rc=0
			wait "$MOCK_PID" 2>/dev/null || rc=$?
			die "the mock upstream died after $when (exit status $rc: $(tail -1 "$OUT/mock.log"))"
		fi
		return 0
	fi
	if [[ $t == bifrost_gov_cluster ]] && ! alive "$REDIS_PID"; then
		# without Redis the gateway would admit by on_redis_down: not what this row measures
		phase_fail "$t" "redis-server died after $when (see bench/out/redis.log): the remaining phases were skipped"
		return 1
	fi
	for p in ${T_PIDS[$t]//,/ }; do
		if ! alive "$p"; then
			rc=0
			wait "$p" 2>/dev/null || rc=$?
			dead+="pid $p gone, exit status $rc; "
		fi
	done
	if [[ -z $dead ]]; then
		hdr_args "$t"
		r=$("$LAT" once -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/body_$t.json" -v 2>&1 | head -c 400) || true
		st=$(head -1 <<<"$r")
		[[ $st == status=200 ]] && return 0
		msg="after $when it answered ${st#status=} ($(tail -n +2 <<<"$r" | tr '\n' ' ' | head -c 160))"
	else
		msg="after $when it died (${dead%; }; see ${T_LOG[$t]#"$BENCH/"})"
	fi
	n=$((${T_RESTARTS[$t]:-0} + 1))
	T_RESTARTS[$t]=$n
	if ((n <= 3)); then
		phase_fail "$t" "restart #$n: $msg"
	else
		log "$t: restart #$n: $msg"
	fi
	((n <= MAX_RESTARTS)) || return 1
	stop_pid "${T_PIDS[$t]%%,*}"
	launch "$t"
}

# run_phase PHASE TARGET ROUND [ARG]: a health check, then phase_PHASE
run_phase() {
	local ph=$1 t=$2 r=$3
	shift 3
	ensure_healthy "$t" || return 0
	"phase_$ph" "$t" "$r" "$@"
	LAST_PHASE[$t]="the $ph phase of round $r${1:+ ($1 conns)}"
}

phase_seq() { # TARGET ROUND
	local t=$1 r=$2 line
	local n=$SEQ_N w=$SEQ_W
	# Portkey answers in ~1 ms: a third of the requests keeps the run short
	[[ $t == portkey ]] && n=$(((SEQ_N + 2) / 3)) w=$(((SEQ_W + 2) / 3))
	hdr_args "$t"
	line=$(on "$SEQ_CPU" "$LAT" rr -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/body_$t.json" -n "$n" -w "$w") || true
	echo "seq $t r$r: $line" >>"$OUT/phases.log"
	[[ -n $line ]] || return 0
	rec "$r" "$t" err "$(errs "$line")"
	if [[ $(kv n "$line") == 0 ]]; then
		phase_fail "$t" "sequential requests: none answered 2xx (last status $(kv last_status "$line"))"
		return 0
	fi
	rec "$r" "$t" seq_p50 "$(kv p50_us "$line")"
	rec "$r" "$t" seq_p90 "$(kv p90_us "$line")"
	rec "$r" "$t" seq_p99 "$(kv p99_us "$line")"
}

phase_stream() { # TARGET ROUND
	local t=$1 r=$2 f=$OUT/stream_$1.$2.txt line
	hdr_args "$t"
	on "$SEQ_CPU" "$LAT" stream -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/sbody_$t.json" -n "$STREAM_N" -w 3 >"$f" || true
	line=$(head -1 "$f")
	echo "stream $t r$r: $line" >>"$OUT/phases.log"
	[[ -n $line ]] || return 0
	rec "$r" "$t" err "$(errs "$line")"
	if [[ $(kv n "$line") == 0 ]]; then
		phase_fail "$t" "streamed requests: none answered 2xx (last status $(kv last_status "$line"))"
		rm -f "$f"
		return 0
	fi
	rec "$r" "$t" ttfb_p50 "$(kv ttfb_p50_us "$line")"
	rec "$r" "$t" events "$(kv events "$line")"
}

phase_wrk() { # TARGET ROUND CONNS
	local t=$1 r=$2 c=$3 f=$OUT/wrk_$1_c$3.$2.txt c0 c1 rps n non2xx sockerr rc0=0 rc1=0
	((HAVE_WRK)) || return 0
	if [[ $t == bifrost_gov_cluster ]]; then rc0=$(cpu_ticks "$REDIS_PID"); fi
	c0=$(cpu_ticks "${T_PIDS[$t]}")
	on "$LOAD_CPU" wrk -t2 -c"$c" -d"${WRK_SECS}s" --timeout 5s -s "$OUT/wrk_$t.lua" \
		"http://127.0.0.1:${T_PORT[$t]}/v1/chat/completions" >"$f" 2>&1 || true
	c1=$(cpu_ticks "${T_PIDS[$t]}")
	if [[ $t == bifrost_gov_cluster ]]; then rc1=$(cpu_ticks "$REDIS_PID"); fi
	rps=$(awk '/^Requests\/sec:/{print $2}' "$f")
	n=$(awk '/requests in/{print $1}' "$f")
	non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$f")
	sockerr=$(awk -F'[ ,]+' '/Socket errors:/{print $4+$6+$8+$10}' "$f")
	echo "wrk c=$c $t r$r: rps=$rps n=$n non2xx=${non2xx:-0} sockerr=${sockerr:-0} cpu_ticks=$((c1 - c0))" >>"$OUT/phases.log"
	[[ -n $rps ]] || return 0
	rec "$r" "$t" "thr$c" "$rps"
	rec "$r" "$t" err "$((${non2xx:-0} + ${sockerr:-0}))"
	if [[ ${n:-0} -gt 0 ]]; then
		rec "$r" "$t" "cpu$c" "$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN{printf "%.3f", d*1e6/hz/n}')"
		# the cluster row: the redis-server's CPU too (not in the gateway's figure)
		if [[ $t == bifrost_gov_cluster ]]; then
			rec "$r" "$t" "rcpu$c" "$(awk -v d="$((rc1 - rc0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN{printf "%.3f", d*1e6/hz/n}')"
		fi
	fi
}

metrics_snap() { # TARGET FILE
	"$LAT" once -p "${T_PORT[$1]}" -P /metrics -M GET -v >"$2" 2>/dev/null || true
}
# hist_pcts BEFORE AFTER: "count=N p50=X p99=Y mean=Z" from the difference of two
# Prometheus snapshots of bifrost_overhead_seconds (buckets summed over label sets;
# linear interpolation inside the bucket that holds the rank; figures in µs).
hist_pcts() {
	awk '
	/^bifrost_overhead_seconds_bucket[{]/ {
		if (!match($0, /le="[^"]*"/)) next
		le = substr($0, RSTART + 4, RLENGTH - 5); v = $2 + 0
		if (FNR == NR) b[le] += v; else { a[le] += v; seen[le] = 1 }
		next
	}
	/^bifrost_overhead_seconds_sum/ { if (FNR == NR) bs += $2 * 1e6; else as += $2 * 1e6; next }
	/^bifrost_overhead_seconds_count/ { if (FNR == NR) bc += $2; else ac += $2; next }
	function num(x) { return (x == "+Inf" || x == "Inf" || x == "+inf") ? 1e300 : x * 1e6 }
	END {
		n = 0
		for (k in seen) key[++n] = k
		for (i = 2; i <= n; i++) { x = key[i]; j = i - 1; while (j >= 1 && num(key[j]) > num(x)) { key[j + 1] = key[j]; j-- }; key[j + 1] = x }
		total = (n ? a[key[n]] - b[key[n]] : 0)
		cnt = ac - bc
		if (total <= 0) { printf "count=0\n"; exit }
		out = sprintf("count=%d mean=%.3f", total, cnt > 0 ? (as - bs) / cnt : 0)
		split("50 99", ps, " ")
		for (q = 1; q <= 2; q++) {
			rank = ps[q] / 100 * total; plo = 0; pc = 0; res = ""
			for (i = 1; i <= n; i++) {
				c = a[key[i]] - b[key[i]]
				if (c >= rank) {
					if (num(key[i]) >= 1e300) res = ">" plo
					else if (c == pc) res = num(key[i])
					else res = sprintf("%.3f", plo + (num(key[i]) - plo) * (rank - pc) / (c - pc))
					break
				}
				plo = num(key[i]); pc = c
			}
			out = out sprintf(" p%s=%s", ps[q], res)
		}
		print out
	}' "$1" "$2"
}

phase_rps() { # TARGET ROUND
	local t=$1 r=$2 line want_metrics=0
	[[ $METRICS_OK == 1 && $t == bifrost* ]] && want_metrics=1
	((want_metrics)) && metrics_snap "$t" "$OUT/metrics_$t.$r.before"
	hdr_args "$t"
	line=$(on "$LOAD_CPU" "$LAT" open -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/body_$t.json" \
		-r "$RPS" -d "$RPS_SECS" -c "$RPS_CONNS") || true
	((want_metrics)) && metrics_snap "$t" "$OUT/metrics_$t.$r.after"
	echo "open $t r$r: $line" >>"$OUT/phases.log"
	if [[ -n $line ]]; then
		rec "$r" "$t" err "$(errs "$line")"
		rec "$r" "$t" lost "$(kv lost "$line")"
		if [[ $(kv n "$line") != 0 ]]; then
			rec "$r" "$t" rps_p50 "$(kv p50_us "$line")"
			rec "$r" "$t" rps_p99 "$(kv p99_us "$line")"
			rec "$r" "$t" rps_achieved "$(kv achieved "$line")"
			rec "$r" "$t" sendlag_p50 "$(kv sendlag_p50_us "$line")"
		fi
	fi
	if ((want_metrics)); then
		line=$(hist_pcts "$OUT/metrics_$t.$r.before" "$OUT/metrics_$t.$r.after") || true
		echo "overhead $t r$r: $line" >>"$OUT/phases.log"
		if [[ -n $line && $(kv count "$line") != 0 ]]; then
			rec "$r" "$t" ovh_p50 "$(kv p50 "$line")"
			rec "$r" "$t" ovh_p99 "$(kv p99 "$line")"
			rec "$r" "$t" ovh_count "$(kv count "$line")"
		fi
	fi
}

# h2load --rps at the same rate: every connection fires on its own timer and
# the timers start together, so requests come in bursts of H2_CONNS.
phase_h2() { # TARGET ROUND
	local t=$1 r=$2 f=$OUT/h2load_$1.$2.txt lf=$OUT/h2load_$1.$2.log st bad failed
	((HAVE_H2LOAD)) || return 0
	hdr_args "$t"
	on "$LOAD_CPU" timeout $((H2_SECS + 20)) h2load --h1 -D "$H2_SECS" -c "$H2_CONNS" \
		--rps "$(((RPS + H2_CONNS - 1) / H2_CONNS))" \
		-d "$OUT/body_$t.json" -H "content-type: application/json" "${HDRS[@]}" \
		--log-file="$lf" "http://127.0.0.1:${T_PORT[$t]}/v1/chat/completions" >"$f" 2>&1 || true
	if [[ ! -s $lf ]]; then
		echo "h2load $t r$r: no log ($(tail -1 "$f"))" >>"$OUT/phases.log"
		return 0
	fi
	st=$("$LAT" stats -c 3 <"$lf") || true
	bad=$(awk '$2 !~ /^2/ {n++} END{print n+0}' "$lf")
	failed=$(awk '/^requests:/{for(i=1;i<=NF;i++){if($i=="failed,"||$i=="errored,")f+=$(i-1)}} END{print f+0}' "$f")
	echo "h2load $t r$r: $st non2xx=$bad failed=$failed $(grep 'finished in' "$f")" >>"$OUT/phases.log"
	rec "$r" "$t" err "$((bad + failed))"
	rec "$r" "$t" h2_p50 "$(kv p50 "$st")"
	rec "$r" "$t" h2_p99 "$(kv p99 "$st")"
}

CLK_TCK=$(getconf CLK_TCK)

# ---- peak RSS with HOLD_CONNS idle connections (fresh processes: nothing but
# the start-up probes has run yet)
for t in "${ACTIVE[@]}"; do
	[[ $t == direct ]] && continue
	hdr_args "$t"
	line=$(on "$SEQ_CPU" "$LAT" hold -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/body_$t.json" -c "$HOLD_CONNS" \
		-m "${T_PIDS[$t]}" -s 500) || true
	echo "hold $t: $line" >>"$OUT/phases.log"
	log "RSS $t: $line"
	[[ -n $line ]] || continue
	rec x "$t" rss_kb "$(kv vmhwm_kb "$line")"
	rec x "$t" err "$(errs "$line")"
	rec x "$t" hold_open "$(kv open "$line")"
	LAST_PHASE[$t]="the ${HOLD_CONNS}-idle-connection (RSS) phase"
done
sleep 0.5

# ---- warm-up (JITs, connection pools, caches)
for t in "${ACTIVE[@]}"; do
	ensure_healthy "$t" || true
	hdr_args "$t"
	on "$SEQ_CPU" "$LAT" rr -p "${T_PORT[$t]}" "${HDRS[@]}" -B "$OUT/body_$t.json" -n 500 -w 0 >/dev/null || true
	if ((HAVE_WRK)); then
		on "$LOAD_CPU" wrk -t2 -c32 -d1s -s "$OUT/wrk_$t.lua" "http://127.0.0.1:${T_PORT[$t]}/v1/chat/completions" >/dev/null 2>&1 || true
	fi
done

# ---- interleaved rounds: in every round each phase runs for every target
# back to back, the target order rotating from round to round.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$SECONDS
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#ACTIVE[@]}
	order=()
	for ((i = 0; i < n; i++)); do order+=("${ACTIVE[$(((i + r - 1) % n))]}"); done
	log "round $r/$ROUNDS: ${order[*]}"
	for t in "${order[@]}"; do run_phase seq "$t" "$r"; done
	for t in "${order[@]}"; do run_phase stream "$t" "$r"; done
	for t in "${order[@]}"; do run_phase wrk "$t" "$r" 32; done
	for t in "${order[@]}"; do run_phase wrk "$t" "$r" 256; done
	for t in "${order[@]}"; do run_phase rps "$t" "$r"; done
	for t in "${order[@]}"; do run_phase h2 "$t" "$r"; done
done
log "rounds done in $((SECONDS - T_START)) s"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# make sure nothing crashed during the run
for t in "${ACTIVE[@]}"; do
	for p in ${T_PIDS[$t]//,/ }; do
		if ! alive "$p"; then
			T_NOTE[$t]="${T_NOTE[$t]:+${T_NOTE[$t]}; }process $p died during the run (see bench/out/$t.log)"
			log "$t: process $p died during the run"
		fi
	done
done
# the cluster row: Redis alive, still reached, and how many admissions it ran
CLU_FAILS='' CLU_EVALSHA='' CLU_EVAL_US=''
if [[ ${T_STATE[bifrost_gov_cluster]} == ok ]]; then
	if ! alive "$REDIS_PID"; then
		T_NOTE[bifrost_gov_cluster]="${T_NOTE[bifrost_gov_cluster]:+${T_NOTE[bifrost_gov_cluster]}; }redis-server died during the run (see bench/out/redis.log)"
	else
		CLU_EVALSHA=$(redis_evalsha)
		CLU_EVAL_US=$(redis_cmdstat evalsha usec_per_call)
	fi
	CLU_FAILS=$(clu_metric bifrost_cluster_redis_failures_total)
	CLU_UP=$(clu_metric bifrost_cluster_redis_up)
	if [[ -n $CLU_FAILS && $CLU_FAILS != 0 ]] || [[ $CLU_UP != 1 ]]; then
		T_NOTE[bifrost_gov_cluster]="${T_NOTE[bifrost_gov_cluster]:+${T_NOTE[bifrost_gov_cluster]}; }Redis was not always reached: bifrost_cluster_redis_failures_total ${CLU_FAILS:-?}, redis_up ${CLU_UP:-?} at the end (requests then admitted by on_redis_down, local_share)"
	fi
fi

# ------------------------------------------------------------------ derived figures
for ((r = 1; r <= ROUNDS; r++)); do
	for t in "${ACTIVE[@]}"; do
		for m in seq_p50 seq_p90 seq_p99 ttfb_p50; do
			a=$(get "$r" "$t" "$m")
			d=$(get "$r" direct "$m")
			[[ -n $a && -n $d ]] && rec "$r" "$t" "add_$m" "$(awk -v a="$a" -v d="$d" 'BEGIN{printf "%.3f", a-d}')"
		done
		# per-chunk added latency: per event index, arrival(target) - arrival(direct);
		# summarised by the median (and max) over indices
		ft=$OUT/stream_$t.$r.txt fd=$OUT/stream_direct.$r.txt
		if [[ -s $ft && -s $fd ]]; then
			line=$(awk '$1=="ev" { if (FNR==NR) d[$2]=$3; else if ($2 in d) print $3-d[$2] }' "$fd" "$ft" |
				"$LAT" stats -c 1) || true
			if [[ -n $line && $(kv n "$line") != 0 ]]; then
				rec "$r" "$t" chunk_add_p50 "$(kv p50 "$line")"
				rec "$r" "$t" chunk_add_max "$(kv max "$line")"
			fi
		fi
	done
done

# ------------------------------------------------------------------ table
# cell TARGET METRIC KIND: formatted median, with the ratio to nginx
fmtv() { # KIND VALUE
	case $1 in
	us) awk -v v="$2" 'BEGIN{printf "%.1f µs", v}' ;;
	rps) awk -v v="$2" 'BEGIN{printf "%.0f/s", v}' ;;
	mb) awk -v v="$2" 'BEGIN{printf "%.1f MB", v/1024}' ;;
	cpu) awk -v v="$2" 'BEGIN{printf "%.1f µs", v}' ;;
	*) printf '%s' "$2" ;;
	esac
}
# rmed TARGET METRIC: median over rounds of TARGET/nginx in the same round
# (more robust on a noisy host than a ratio of medians)
rmed() {
	awk -F'\t' -v t="$1" -v m="$2" '
		$3 == m && $2 == t { a[$1] = $4 }
		$3 == m && $2 == "nginx" { b[$1] = $4 }
		END { for (r in a) if ((r in b) && a[r] + 0 > 0 && b[r] + 0 > 0) printf "%.6g\n", a[r] / b[r] }' "$RAW" |
		sort -g | awk '{x[NR]=$1} END{if(NR==0) exit; if(NR%2) print x[(NR+1)/2]; else printf "%.6g\n", (x[NR/2]+x[NR/2+1])/2}'
}
# ratio TARGET METRIC: the ratio shown in the table: per-round ratios for
# positive quantities, ratio of medians for differences (added latencies)
ratio() {
	local v nv
	if [[ $2 == add_* || $2 == chunk_* ]]; then
		v=$(med "$1" "$2")
		nv=$(med nginx "$2")
		[[ -n $v && -n $nv ]] && awk -v v="$v" -v n="$nv" 'BEGIN{ if (n+0 != 0) printf "%.6g", v/n }'
	else
		rmed "$1" "$2"
	fi
	return 0
}

# rpair OP A B METRIC: median over rounds of A OP B (OP: - or /), each within one round
rpair() {
	awk -F'\t' -v op="$1" -v a="$2" -v b="$3" -v m="$4" '
		$3 == m && $2 == a && $4 != "" { x[$1] = $4 }
		$3 == m && $2 == b && $4 != "" { y[$1] = $4 }
		END { for (r in x) if (r in y) { if (op == "-") printf "%.6g\n", x[r] - y[r]; else if (y[r] + 0 > 0) printf "%.6g\n", x[r] / y[r] } }' "$RAW" |
		sort -g | awk '{v[NR]=$1} END{if(NR==0) exit; if(NR%2) print v[(NR+1)/2]; else printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}'
}

cell() { # TARGET METRIC KIND
	local t=$1 m=$2 k=$3 v nv
	if [[ ${T_STATE[$t]} != ok ]]; then printf 'n/a'; return; fi
	v=$(med "$t" "$m")
	if [[ -z $v ]]; then printf '—'; return; fi
	if [[ $v == ">"* ]]; then printf '%s' "$v"; return; fi
	fmtv "$k" "$v"
	if [[ $t != nginx && ${T_STATE[nginx]} == ok ]]; then
		nv=$(ratio "$t" "$m")
		[[ -z $nv ]] || awk -v x="$nv" 'BEGIN{ printf " (%.2f×)", x }'
	fi
}
# meets METRIC OP LIMIT: does bifrost's median satisfy it? (LIMIT may be "nginx")
meets() {
	local m=$1 op=$2 lim=$3 v
	[[ ${T_STATE[bifrost]} == ok ]] || { printf 'n/a'; return; }
	v=$(med bifrost "$m")
	[[ -n $v ]] || { printf 'n/a'; return; }
	if [[ $lim == nginx && $m != add_* ]]; then # compare the per-round ratio with 1
		v=$(rmed bifrost "$m")
		lim=1
		[[ -n $v ]] || { printf 'n/a'; return; }
	elif [[ $lim == nginx ]]; then
		lim=$(med nginx "$m")
		[[ -n $lim ]] || { printf 'n/a'; return; }
	fi
	awk -v v="$v" -v l="$lim" -v op="$op" 'BEGIN{ ok = (op=="le") ? (v+0 <= l+0) : (v+0 >= l+0); printf ok ? "yes" : "**no**" }'
}

ROWS=(
	"Added latency p50, 1 conn sequential|add_seq_p50|us|≤ nginx|meets add_seq_p50 le nginx|seq_p50"
	"Added latency p90, 1 conn sequential|add_seq_p90|us|—||seq_p90"
	"Added latency p99, 1 conn sequential|add_seq_p99|us|—||seq_p99"
	"Throughput, 32 conns (wrk)|thr32|rps|≥ nginx|meets thr32 ge nginx|"
	"Throughput, 256 conns (wrk)|thr256|rps|—||"
	"Gateway CPU per request at 32 conns|cpu32|cpu|—||"
	"Gateway CPU per request at 256 conns|cpu256|cpu|—||"
	"Latency p50 at ${RPS} RPS open loop, evenly spaced (lat open)|rps_p50|us|—||"
	"Latency p99 at ${RPS} RPS open loop, evenly spaced (lat open)|rps_p99|us|—||"
	"Latency p50 at ${RPS} RPS, h2load --rps (bursts of ${H2_CONNS})|h2_p50|us|—||"
	"Latency p99 at ${RPS} RPS, h2load --rps (bursts of ${H2_CONNS})|h2_p99|us|—||"
	"Internal overhead p50 at ${RPS} RPS (/metrics)|ovh_p50|us|≤ 5 µs|meets ovh_p50 le 5|"
	"Internal overhead p99 at ${RPS} RPS (/metrics)|ovh_p99|us|≤ 20 µs|meets ovh_p99 le 20|"
	"Streaming: first body byte added|add_ttfb_p50|us|≤ 50 µs|meets add_ttfb_p50 le 50|ttfb_p50"
	"Streaming: per-chunk added (median over chunks)|chunk_add_p50|us|—||"
	"Streaming: per-chunk added (worst chunk)|chunk_add_max|us|—||"
	"Peak RSS (VmHWM), ${HOLD_CONNS} idle conns|rss_kb|mb|≤ 32 MB|meets rss_kb le 32768|"
)

TABLE=$OUT/table.md
trow() { printf '| %s ' "$@"; printf '|\n'; } # one table row, a cell per argument
{
	cells=()
	for t in "${TARGETS_ALL[@]}"; do cells+=("${T_LABEL[$t]}"); done
	trow Metric "Target (bifrost)" "${cells[@]}" "bifrost meets target"
	trow --- --- "${cells[@]/*/---}" ---
	for row in "${ROWS[@]}"; do
		IFS='|' read -r title metric kind target check floor <<<"$row"
		cells=()
		for t in "${TARGETS_ALL[@]}"; do
			if [[ $t == direct ]]; then
				if [[ -n $floor ]]; then
					v=$(med direct "$floor")
					cells+=("${v:+floor $(fmtv us "$v")}")
				elif [[ $metric == ovh_* || $metric == rss_kb || $metric == chunk_* ]]; then
					cells+=("—")
				else
					cells+=("$(cell direct "$metric" "$kind")")
				fi
			elif [[ $metric == ovh_* && $t != bifrost* ]]; then
				cells+=("—")
			elif [[ $metric == ovh_* && $METRICS_OK != 1 && ${T_STATE[$t]} == ok ]]; then
				cells+=("n/a (no /metrics)")
			else
				cells+=("$(cell "$t" "$metric" "$kind")")
			fi
		done
		verdict=n/a
		if [[ -n $check ]]; then
			# shellcheck disable=SC2086 # the check is a command line
			verdict=$($check)
		fi
		[[ $metric == ovh_* && $METRICS_OK != 1 ]] && verdict="n/a (no /metrics)"
		trow "$title" "$target" "${cells[@]}" "$verdict"
	done
	# errors row: every non-2xx answer and socket error seen, summed over all phases
	cells=()
	for t in "${TARGETS_ALL[@]}"; do
		if [[ ${T_STATE[$t]} == ok ]]; then cells+=("$(sumx "$t" err)"); else cells+=("n/a"); fi
	done
	trow "Errors (non-2xx + socket errors, all phases)" 0 "${cells[@]}" \
		"$([[ ${T_STATE[bifrost]} == ok ]] && { [[ $(sumx bifrost err) == 0 ]] && echo yes || echo '**no**'; } || echo n/a)"
	cells=()
	for t in "${TARGETS_ALL[@]}"; do
		if [[ ${T_STATE[$t]} == ok ]]; then cells+=("${T_RESTARTS[$t]:-0}"); else cells+=("n/a"); fi
	done
	trow "Restarts (died, or stopped answering 200 between phases)" 0 "${cells[@]}" \
		"$([[ ${T_STATE[bifrost]} == ok ]] && { [[ ${T_RESTARTS[bifrost]:-0} == 0 ]] && echo yes || echo '**no**'; } || echo n/a)"
} >"$TABLE"

# ------------------------------------------------------------------ report
COMMIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "no commit")
MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
NOTES=$OUT/notes.md
{
	echo "Notes:"
	for t in "${TARGETS_ALL[@]}"; do
		if [[ ${T_STATE[$t]} != ok ]]; then
			echo "- ${T_LABEL[$t]}: n/a (${T_NOTE[$t]})"
		elif [[ -n ${T_NOTE[$t]} ]]; then
			echo "- ${T_LABEL[$t]}: ${T_NOTE[$t]}"
		fi
	done
	[[ ${T_STATE[bifrost]} == ok && $METRICS_OK != 1 ]] && echo "- bifrost: GET /metrics has no bifrost_overhead_seconds histogram: overhead rows n/a"
	for t in "${ACTIVE[@]}"; do
		ev=$(med "$t" events)
		dv=$(med direct events)
		if [[ -n $ev && -n $dv && $ev != "$dv" ]]; then
			echo "- ${T_LABEL[$t]}: streamed answers carried $ev SSE events, direct $dv (events matched by index)"
		fi
		e=$(sumx "$t" err)
		[[ $e == 0 ]] || echo "- ${T_LABEL[$t]}: $e errors/non-2xx answers in total: see bench/out/phases.log"
		l=$(sumx "$t" lost)
		[[ $l == 0 ]] || echo "- ${T_LABEL[$t]}: open loop: $l requests still unanswered 3 s after the end of the run (not counted as errors)"
		a=$(med "$t" rps_achieved)
		if [[ -n $a ]] && awk -v a="$a" -v w="$RPS" 'BEGIN{exit !(a < 0.95*w)}'; then
			echo "- ${T_LABEL[$t]}: open loop reached only $a req/s of $RPS: its ${RPS}-RPS latencies are under overload"
		fi
		starved=$(awk -F'\t' -v t="$t" '$2==t && $3=="sendlag_p50" && $4+0 > 200 {printf "%s%s", s, $1; s=","}' "$RAW")
		[[ -z $starved ]] || echo "- ${T_LABEL[$t]}: in round(s) $starved the open-loop client itself woke up late (send lag p50 > 200 µs): the machine was starved, those rounds' 5,000-RPS figures mostly measure the host"
		h=$(med "$t" hold_open)
		[[ -z $h || $h == "$HOLD_CONNS" ]] || echo "- ${T_LABEL[$t]}: only $h of $HOLD_CONNS connections stayed open for the RSS figure"
	done
	if [[ ${T_STATE[bifrost]} == ok && ${T_STATE[bifrost_nolog]} == ok ]]; then
		lc() { local v; v=$(rpair "$1" bifrost bifrost_nolog "$2"); [[ -n $v ]] && awk -v v="$v" -v f="$3" 'BEGIN{printf f, v}' || printf 'n/a'; }
		echo "- Cost of the request log store (bifrost minus \"bifrost, logs off\", per round, median over rounds):" \
			"added latency p50 $(lc - add_seq_p50 '%+.1f µs'), p99 $(lc - add_seq_p99 '%+.1f µs');" \
			"CPU per request at 32 conns $(lc - cpu32 '%+.2f µs'), at 256 conns $(lc - cpu256 '%+.2f µs');" \
			"throughput at 32 conns $(lc / thr32 '%.3f×'), at 256 conns $(lc / thr256 '%.3f×');" \
			"${RPS}-RPS open loop p50 $(lc - rps_p50 '%+.1f µs'), p99 $(lc - rps_p99 '%+.1f µs');" \
			"internal overhead p50 $(lc - ovh_p50 '%+.2f µs'), p99 $(lc - ovh_p99 '%+.2f µs');" \
			"streaming first byte $(lc - add_ttfb_p50 '%+.1f µs')."
	fi
	if [[ ${T_STATE[bifrost_gov]} == ok && ${T_STATE[bifrost_gov_cluster]} == ok ]]; then
		cc() { local v; v=$(rpair "$1" bifrost_gov_cluster bifrost_gov "$2"); [[ -n $v ]] && awk -v v="$v" -v f="$3" 'BEGIN{printf f, v}' || printf 'n/a'; }
		rc() { local v; v=$(med bifrost_gov_cluster "$1"); [[ -n $v ]] && awk -v v="$v" 'BEGIN{printf "%.2f µs", v}' || printf 'n/a'; }
		echo "- Cost of cluster mode (\"bifrost+gov+cluster\" minus \"bifrost+gov\", per round, median over rounds; Redis on loopback, pinned to CPU [${REDIS_CPU:-any}]):" \
			"added latency p50 $(cc - add_seq_p50 '%+.1f µs'), p99 $(cc - add_seq_p99 '%+.1f µs');" \
			"throughput at 32 conns $(cc / thr32 '%.3f×'), at 256 conns $(cc / thr256 '%.3f×');" \
			"gateway CPU per request at 32 conns $(cc - cpu32 '%+.2f µs'), at 256 conns $(cc - cpu256 '%+.2f µs')" \
			"(plus redis-server's own: $(rc rcpu32), $(rc rcpu256));" \
			"${RPS}-RPS open loop p50 $(cc - rps_p50 '%+.1f µs'), p99 $(cc - rps_p99 '%+.1f µs');" \
			"internal overhead p50 $(cc - ovh_p50 '%+.2f µs'), p99 $(cc - ovh_p99 '%+.2f µs');" \
			"streaming first byte $(cc - add_ttfb_p50 '%+.1f µs')." \
			"Redis ran ${CLU_EVALSHA:-?} EVALSHA admissions (${CLU_EVAL_US:-?} µs each inside Redis);" \
			"bifrost_cluster_redis_failures_total ${CLU_FAILS:-?}."
	fi
	if awk -v l="${LOAD_BEFORE%% *}" -v a="${LOAD_AFTER%% *}" -v n="$NCPU" 'BEGIN{exit !(l > n || a > n + 1)}'; then
		echo "- The host was busy during this run (load average $LOAD_BEFORE before, $LOAD_AFTER after, on $NCPU CPUs; the harness itself accounts for about 2): other processes shared the pinned cores, so absolute figures are inflated and noisy; trust the per-round ratios more."
	fi
	echo "- Figures are medians over $ROUNDS round(s). Ratios in parentheses are to nginx: the median of the per-round ratios (same round), except for added latencies (ratio of the medians). Added latency = target minus direct, per round."
} >"$NOTES"

{
	echo "# Bifrost-C benchmark results"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $NCPU cores, $MODEL, kernel $(uname -r); load average before the rounds $LOAD_BEFORE, after $LOAD_AFTER"
	echo "- Commit: $COMMIT${BIFROST_VERSION:+ (binary: $BIFROST_VERSION)}"
	echo "- Run: ROUNDS=$ROUNDS QUICK=$QUICK; sequential $SEQ_N requests (+$SEQ_W warm-up) per round; wrk ${WRK_SECS}s -t2;" \
		"open loop $RPS req/s for ${RPS_SECS}s over $RPS_CONNS conns (h2load: ${H2_SECS}s, $H2_CONNS conns); $STREAM_N streams of $CHUNKS chunks ${CHUNK_US} µs apart;" \
		"$HOLD_CONNS idle conns for RSS"
	echo "- CPU layout: mock on [${MOCK_CPU:-any}], gateway/nginx on [${GW_CPU:-any}], wrk/h2load on [${LOAD_CPU:-any}]," \
		"1-connection client on [${SEQ_CPU:-any}]; one worker each (nginx worker_processes 1, bifrost -w 1)${REDIS_PID:+; redis-server (bifrost+gov+cluster) on [${REDIS_CPU:-any}]}"
	for t in "${ACTIVE[@]}"; do
		[[ $t == direct ]] && continue
		echo "  - ${T_LABEL[$t]} threads allowed on CPUs: ${T_AFFINITY[$t]}"
	done
	[[ -z $REDIS_AFFINITY ]] || echo "  - redis-server (bifrost+gov+cluster) threads allowed on CPUs: $REDIS_AFFINITY"
	echo "- Tools: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(h2load --version 2>&1 | head -1)," \
		"node $(node --version 2>/dev/null || echo none), @portkey-ai/gateway ${PORTKEY_VERSION:-none}, redis-server ${REDIS_VERSION:-none}, $(gcc --version | head -1)"
	echo
	cat "$TABLE"
	echo
	cat "$NOTES"
	echo
	echo "## Per-round values"
	echo
	echo '```'
	for t in "${ACTIVE[@]}"; do
		for m in seq_p50 seq_p99 add_seq_p50 thr32 thr256 cpu32 cpu256 rcpu32 rcpu256 rps_p50 rps_p99 rps_achieved sendlag_p50 h2_p50 h2_p99 ovh_p50 ovh_p99 ttfb_p50 chunk_add_p50 rss_kb; do
			v=$(vals "$t" "$m")
			[[ -n $v ]] && printf '%-12s %-14s %s\n' "$t" "$m" "$v"
		done
	done
	echo '```'
	if [[ -s $OUT/stream_direct.1.txt ]]; then
		echo
		echo "## Streaming: arrival of each SSE event since the request was sent (round 1, median µs)"
		echo
		hdr="| event | direct"
		sep="|---|---"
		for t in "${ACTIVE[@]}"; do [[ $t == direct ]] || { hdr+=" | ${T_LABEL[$t]}"; sep+="|---"; }; done
		echo "$hdr |"
		echo "$sep|"
		files=("$OUT/stream_direct.1.txt")
		for t in "${ACTIVE[@]}"; do
			[[ $t == direct ]] && continue
			if [[ -s $OUT/stream_$t.1.txt ]]; then files+=("$OUT/stream_$t.1.txt"); else files+=(/dev/null); fi
		done
		awk -v files="$(printf '%s\n' "${files[@]}")" '
			BEGIN {
				nf = split(files, F, "\n"); n = 0
				for (j = 1; j <= nf; j++) {
					while ((getline line < F[j]) > 0) {
						split(line, x, " ")
						if (x[1] == "ev") { v[j, x[2]] = x[3]; if (x[2] + 1 > n) n = x[2] + 1 }
					}
					close(F[j])
				}
				for (i = 0; i < n; i++) {
					out = "| " i
					for (j = 1; j <= nf; j++) out = out " | " ((j, i) in v ? v[j, i] : "—")
					print out " |"
				}
			}'
	fi
	echo
	echo "Method and caveats: bench/README.md. Raw output of this run: bench/out/ (not committed)."
} >"$BENCH/RESULTS.md"

echo
cat "$TABLE"
echo
cat "$NOTES"
echo
log "written to bench/RESULTS.md (raw output in bench/out/)"

# ---- the HTTPS listener: bench/tls.sh (SKIP_TLS=1 leaves it out), once the
# processes above are stopped; its table is appended to bench/RESULTS.md
if [[ ${SKIP_TLS:-0} != 1 && -f $BENCH/tls.sh ]]; then
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	if BIFROST=$BIFROST bash "$BENCH/tls.sh"; then
		{ echo; echo "## TLS (bench/tls.sh)"; tail -n +2 "$OUT/tls/RESULTS.md"; } >>"$BENCH/RESULTS.md"
	else
		log "bench/tls.sh failed (see bench/out/tls/)"
	fi
fi

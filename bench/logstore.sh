#!/usr/bin/env bash
# bench/logstore.sh -- benchmark of the request log store (SQLite, data_dir/logs.db).
#
# Three parts (see bench/README.md, "The request log store"):
#  queries  fills a data_dir's logs.db with ROWS synthetic rows over DAYS days
#           (bench/logfill.c; the gateway creates the schema itself first),
#           starts dist/bifrost on it and times GET /api/logs and
#           GET /api/logs/stats for one full day with curl: one cold run (a
#           freshly started gateway, the file evicted from the page cache) and
#           REPS warm runs after one warm-up (median quoted; a query whose cold
#           run took over 5 s gets REPS_SLOW runs and no extra warm-up), plus
#           the gateway's CPU time per warm run and the SQL plans.
#  rate     dist/bifrost with logs on, on an empty data_dir, in front of
#           bench/mock; bench/lat open sends RATE requests/s for RATE_SECS;
#           then requests sent vs rows in logs.db vs the log store metrics;
#           the same with logs off for comparison.
#  big      the same rate for BIG_SECS into the big store (the query part's),
#           long enough to cover the writer's once-a-minute retention step,
#           with a per-second count of the records dropped; the rows it adds
#           are deleted afterwards.
# Prints markdown tables, also written to bench/out/logstore/RESULTS.md.
# Needs ./build.sh vendor (vendor/host: SQLite) and dist/bifrost; curl.
# Note: bench/run.sh empties bench/out/ when it starts, this store included.
#
# Environment knobs (defaults in brackets):
#   ROWS [10000000] DAYS [30] KEYS [50]  the synthetic store
#   LOG_DATA [bench/out/logstore/data]   data_dir of the query part; a logs.db
#                                        there with >= ROWS rows is reused as is
#                                        (REFILL=1 fills a new one)
#   REPS [5] REPS_SLOW [2]               warm runs per query (slow queries: REPS_SLOW)
#   RATE [20000] RATE_SECS [10]          open-loop rate and duration of the rate part
#   RATE_CONNS [64] RATE_WORKERS [1]     client connections; bifrost -w
#   BIG_SECS [75]                        duration of the big part
#   SKIP_QUERIES=1 / SKIP_RATE=1 / SKIP_BIG=1   leave a part out
#   MOCK_CPU/GW_CPU/LOAD_CPU, PIN=0      CPU pinning as in bench/run.sh
#   BIFROST [dist/bifrost]  BENCH_PORT_BASE [18600]
set -Eeuo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
OUT=$BENCH/out/logstore
BUILD=$BENCH/build
LOGFILL=$BUILD/logfill
LAT=$BUILD/lat
MOCK=$BUILD/mock
BIFROST=${BIFROST:-${BIFROST_BIN:-$ROOT/dist/bifrost}}
: "${ROWS:=10000000}" "${DAYS:=30}" "${KEYS:=50}" "${REPS:=5}" "${REPS_SLOW:=2}" "${REFILL:=0}"
: "${RATE:=20000}" "${RATE_SECS:=10}" "${RATE_CONNS:=64}" "${RATE_WORKERS:=1}"
: "${SKIP_QUERIES:=0}" "${SKIP_RATE:=0}" "${SKIP_BIG:=0}" "${BIG_SECS:=75}" "${PIN:=1}"
LOG_DATA=${LOG_DATA:-$OUT/data}

log() { printf '[logstore %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ processes
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
NEXT_PORT=${BENCH_PORT_BASE:-18600}
kv() { awk -v k="$1" '{for(i=1;i<=NF;i++){n=index($i,"="); if(substr($i,1,n-1)==k){print substr($i,n+1); exit}}}' <<<"$2"; }
# metric NAME FILE: the value of an unlabelled Prometheus counter (0 if absent)
metric() { awk -v m="$1" '$1==m {v=$2} END{print v+0}' "$2"; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0) exit; if(NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }

# ------------------------------------------------------------------ setup
for tool in gcc taskset ss awk curl; do command -v "$tool" >/dev/null || die "$tool not found"; done
[[ -f $ROOT/vendor/host/lib/libsqlite3.a && -f $ROOT/vendor/host/include/sqlite3.h ]] ||
	die "vendor/host has no SQLite: run ./build.sh vendor first"
[[ -x $BIFROST ]] || die "$BIFROST not built: run ./build.sh first"
mkdir -p "$OUT" "$BUILD"
rm -f "$OUT"/*.log "$OUT"/*.json "$OUT"/*.md "$OUT"/*.txt
rm -rf "$OUT/resp" "$OUT/rate"
mkdir -p "$OUT/resp"
ulimit -n 65536 2>/dev/null || true
log "building logfill, mock and lat into bench/build/"
gcc -O2 -Wall -I"$ROOT/vendor/host/include" -o "$LOGFILL" "$BENCH/logfill.c" "$ROOT/vendor/host/lib/libsqlite3.a" -lpthread -lm
gcc -O2 -Wall -o "$MOCK" "$BENCH/mock.c"
gcc -O2 -Wall -o "$LAT" "$BENCH/lat.c"
cp "$BIFROST" "$OUT/bifrost.bin" # a rebuild during the run must not change the binary under test
BIN=$OUT/bifrost.bin
BIFROST_VERSION=$("$BIN" --version 2>&1 | head -1) || true

NCPU=$(nproc)
if [[ $PIN != 1 || $NCPU -lt 2 ]]; then
	: "${MOCK_CPU:=}" "${GW_CPU:=}" "${LOAD_CPU:=}"
elif ((NCPU == 2)); then
	: "${MOCK_CPU:=0}" "${GW_CPU:=1}" "${LOAD_CPU:=0}"
else
	: "${MOCK_CPU:=0}" "${GW_CPU:=1}" "${LOAD_CPU:=2-$((NCPU - 1))}"
fi
log "CPUs: $NCPU; mock on [${MOCK_CPU:-any}], bifrost on [${GW_CPU:-any}], curl/lat on [${LOAD_CPU:-any}]"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# gw_cfg FILE UPSTREAM_PORT LOGS_JSON
gw_cfg() {
	cat >"$1" <<EOF
{"providers":[{"name":"mock","provider":"openai","base_url":"http://127.0.0.1:$2/v1","apiKey":"sk-bench"}],
 "log_requests":false, "logs":$3}
EOF
}
GW_PID='' GW_PORT=''
# gw_start NAME CFG DATA_DIR WORKERS
gw_start() {
	alloc_port
	GW_PORT=$PORT
	start_bg "$1" "$GW_CPU" "$BIN" -c "$2" -l "127.0.0.1:$GW_PORT" -w "$4" -d "$3"
	GW_PID=$LAST_PID
	wait_port "$GW_PID" "$GW_PORT" 30 || die "bifrost did not start: $(tail -5 "$OUT/$1.log")"
}
gw_stop() { [[ -z $GW_PID ]] || stop_pid "$GW_PID"; GW_PID=; }
# gw_settle: wait (at most 300 s) until the gateway has neither used CPU nor read from
# disk for 0.5 s: the writer's first retention step runs at start-up (on a big store
# it reads the whole table). Sets SETTLE_S and SETTLE_MS (the CPU it used meanwhile).
gw_settle() {
	local a b i t0=$SECONDS c0
	c0=$(cpu_ticks "$GW_PID")
	b="$(cpu_ticks "$GW_PID") $(awk '/^read_bytes/{print $2}' "/proc/$GW_PID/io" 2>/dev/null)"
	for ((i = 0; i < 600; i++)); do
		sleep 0.5
		a=$b
		b="$(cpu_ticks "$GW_PID") $(awk '/^read_bytes/{print $2}' "/proc/$GW_PID/io" 2>/dev/null)"
		[[ $a == "$b" ]] && break
	done
	SETTLE_S=$((SECONDS - t0))
	SETTLE_MS=$((($(cpu_ticks "$GW_PID") - c0) * 1000 / CLK_TCK))
}

CLK_TCK=$(getconf CLK_TCK)
TABLES=$OUT/tables.md
: >"$TABLES"

# ------------------------------------------------------------------ part 1: queries
if [[ $SKIP_QUERIES != 1 ]]; then
	DB=$LOG_DATA/logs.db
	# every row is kept: no age or size retention may delete any while we measure
	gw_cfg "$OUT/query.json" 9 '{"enabled":true,"retention_days":36500,"max_bytes":1125899906842624}'
	have=0
	if [[ $REFILL != 1 && -s $DB ]]; then
		have=$("$LOGFILL" -x "SELECT count(*) FROM logs" "$DB" 2>/dev/null) || have=0
	fi
	FILL_LINE="reused ($have rows already there)"
	if ((have < ROWS)); then
		rm -rf "$LOG_DATA"
		mkdir -p "$LOG_DATA"
		log "creating $DB: the gateway makes the schema"
		gw_start schema "$OUT/query.json" "$LOG_DATA" 1
		gw_stop
		"$LOGFILL" -x "SELECT 1 FROM logs LIMIT 1" "$DB" >/dev/null || die "the gateway did not create $DB"
		log "filling it with $ROWS rows over $DAYS days (bench/logfill)"
		FILL_LINE=$("$LOGFILL" -n "$ROWS" -D "$DAYS" -k "$KEYS" "$DB")
		log "fill: $FILL_LINE"
		have=$ROWS
	fi
	DB_MB=$(du -cm "$DB"* | awk 'END{print $1}')
	MAXTS=$("$LOGFILL" -x "SELECT max(ts) FROM logs" "$DB")
	DAY=$(((MAXTS / 86400000 - 1) * 86400000)) # the last full UTC day in the store
	DAY_END=$((DAY + 86400000))
	DAY_ROWS=$("$LOGFILL" -x "SELECT count(*) FROM logs WHERE ts >= $DAY AND ts < $DAY_END" "$DB")
	DAY_TXT=$(date -u -d "@$((DAY / 1000))" '+%Y-%m-%d')
	log "store: $have rows, $DB_MB MB; the day measured: $DAY_TXT UTC ($DAY_ROWS rows)"
	R="since=$DAY&until=$DAY_END"
	# NAME|PATH?QUERY|TARGET_MS|TITLE
	QUERIES=(
		"key1|/api/logs?virtual_key_id=vk-01&$R&limit=100|100|One key's day, busiest key (vk-01), limit 100"
		"key25|/api/logs?virtual_key_id=vk-25&$R&limit=100|100|One key's day, a typical key (vk-25), limit 100"
		"prov|/api/logs?provider=openai&$R&limit=100||One provider's day (openai), limit 100"
		"err|/api/logs?status=error&$R&limit=100||Errors of the day (status=error), limit 100"
		"all|/api/logs?$R&limit=100||The day unfiltered, first page (limit 100)"
		"st_prov|/api/logs/stats?$R&group=provider|500|Stats for the day, group=provider"
		"st_model|/api/logs/stats?$R&group=model|500|Stats for the day, group=model"
		"st_key|/api/logs/stats?$R&group=virtual_key|500|Stats for the day, group=virtual_key"
		"ui24h|/api/logs?since=$((MAXTS - 86400000))&limit=50||UI Logs page default (last 24 h, no until, limit 50)"
		"uiall|/api/logs?limit=50||UI Logs page, \"All time\" (limit 50)"
		"st_7d|/api/logs/stats?since=$((MAXTS - 7 * 86400000))&until=$MAXTS&bucket_s=3600&group=provider||UI dashboard \"Last 7 days\" (stats, group=provider)"
	)
	# qtime NAME URLPATH: one request; prints "ms total" (total: the answer's total or totals.count)
	qtime() {
		local f=$OUT/resp/$1.json r code t
		r=$(on "$LOAD_CPU" curl -s -o "$f" -w '%{http_code} %{time_total}' --max-time 120 "http://127.0.0.1:$GW_PORT$2") || true
		code=${r%% *}
		t=${r#* }
		[[ $code == 200 ]] || { echo "ERR$code"; return 0; }
		awk -v t="$t" 'BEGIN{printf "%.1f ", t*1000}'
		grep -o '"total":[0-9-]*\|"totals":{"count":[0-9]*' "$f" | head -1 | grep -o '[0-9-]*$' || echo "?"
	}
	log "timing ${#QUERIES[@]} queries: cold (fresh gateway, then the file evicted) then 1 warm-up + $REPS runs"
	QROWS=()
	SETTLES=()
	for q in "${QUERIES[@]}"; do
		IFS='|' read -r name url target title <<<"$q"
		gw_stop
		gw_start "query" "$OUT/query.json" "$LOG_DATA" 1
		gw_settle # the start-up retention step reads the table: let it finish, then evict
		SETTLES+=("$SETTLE_S s/$SETTLE_MS ms")
		"$LOGFILL" -E "$DB" || true
		cold=$(qtime "$name" "$url")
		reps=$REPS
		if awk -v c="${cold%% *}" 'BEGIN{exit !(c + 0 > 5000)}'; then
			reps=$REPS_SLOW # the cold run was the warm-up
		else
			qtime "$name" "$url" >/dev/null
		fi
		warm=()
		c0=$(cpu_ticks "$GW_PID")
		for ((i = 0; i < reps; i++)); do warm+=("$(qtime "$name" "$url")"); done
		cpu=$(awk -v d="$(($(cpu_ticks "$GW_PID") - c0))" -v hz="$CLK_TCK" -v n="$reps" 'BEGIN{printf "%.0f", d*1000/hz/n}')
		total=${cold#* }
		ws=$(printf '%s\n' "${warm[@]}" | awk '{print $1}')
		echo "$name cold=${cold%% *} warm=$(echo $ws) cpu_ms=$cpu total=$total url=$url" >>"$OUT/queries.txt"
		med=$(median <<<"$ws")
		mn=$(sort -g <<<"$ws" | head -1)
		mx=$(sort -g <<<"$ws" | tail -1)
		verdict="—"
		if [[ -n $target && -n $med ]]; then
			verdict=$(awk -v m="$med" -v t="$target" 'BEGIN{print (m+0 < t+0) ? "yes" : "**no**"}')
		fi
		log "$name: cold ${cold%% *} ms, warm median $med ms ($mn–$mx), gateway CPU $cpu ms per run, total $total"
		QROWS+=("| $title | $total | $([[ -n $target ]] && echo "< $target ms" || echo —) | ${cold%% *} ms | $med ms ($reps) | $mn–$mx ms | $cpu ms | $verdict |")
	done
	gw_stop
	{
		echo "### Queries on a store of $have rows ($DB_MB MB with WAL), the day $DAY_TXT UTC ($DAY_ROWS rows)"
		echo
		echo "| Query | Rows matched (total / count) | Target | Cold | Warm median (runs) | Warm min–max | Gateway CPU per warm run | Meets target (warm median) |"
		echo "|---|---|---|---|---|---|---|---|"
		printf '%s\n' "${QROWS[@]}"
		echo
		echo "Fill: $FILL_LINE. Cold: a freshly started gateway, once its start-up work is over, with logs.db evicted from the page cache (posix_fadvise); warm: after one warm-up run. Times are curl's time_total on loopback; gateway CPU is utime+stime of the bifrost process over the warm runs (10 ms ticks), which other load on the host does not inflate."
		echo
		echo "Gateway start-up on this store, until it is idle (wall / CPU; the writer's first retention step): ${SETTLES[*]}."
		echo
		# the plans SQLite picks for the SQL that bifrost.c (ldb_logs_json, ldb_stats_json) builds
		W="WHERE ts >= $DAY AND ts < $DAY_END"
		echo "SQLite query plans (EXPLAIN QUERY PLAN of the statements bifrost.c builds, via bench/build/logfill -x):"
		echo
		echo '```'
		for p in "list, one key|SELECT * FROM logs $W AND virtual_key_id = 'vk-01' ORDER BY id DESC LIMIT 100 OFFSET 0" \
			"count, one key|SELECT count(*) FROM logs $W AND virtual_key_id = 'vk-01'" \
			"list, status=error|SELECT * FROM logs $W AND status >= 400 ORDER BY id DESC LIMIT 100 OFFSET 0" \
			"count, status=error|SELECT count(*) FROM logs $W AND status >= 400" \
			"list, day unfiltered|SELECT * FROM logs $W ORDER BY id DESC LIMIT 100 OFFSET 0" \
			"list, all time|SELECT * FROM logs WHERE ts >= 0 AND ts < 9223372036854775807 ORDER BY id DESC LIMIT 50 OFFSET 0" \
			"stats|SELECT ts, coalesce(provider, '(none)'), status, latency_us FROM logs $W"; do
			printf '%-22s %s\n' "${p%%|*}:" "$("$LOGFILL" -x "EXPLAIN QUERY PLAN ${p#*|}" "$DB" | cut -f4 | paste -sd';' - | sed 's/;/; /g')"
		done
		echo '```'
		echo
	} >>"$TABLES"
fi

# ------------------------------------------------------------------ part 2: logging at a fixed rate
# rate_run LABEL LOGS(true/false): a fresh gateway on an empty data_dir, a warm-up,
# then RATE req/s for RATE_SECS; figures into R_<field>[LABEL].
declare -A R_LINE R_ROWS R_ROWS_STOP R_WRITTEN R_DROPPED R_DROPPED_ALL R_FAILED R_CPU R_THREADS
rate_run() {
	local label=$1 logs=$2 dir=$OUT/rate/$1 line c0 c1 rows0 rows1 rows2 t
	local -A th0=()
	mkdir -p "$dir/data"
	gw_cfg "$dir/cfg.json" "$MOCK_PORT" "{\"enabled\":$logs}"
	gw_start "rate_$label" "$dir/cfg.json" "$dir/data" "$RATE_WORKERS"
	local st rdb=$dir/data/logs.db
	st=$("$LAT" once -p "$GW_PORT" -B "$BODY" | head -1) || true
	[[ $st == status=200 ]] || die "bifrost ($label) did not answer the probe with 200 ($st): $(tail -3 "$OUT/rate_$label.log")"
	on "$LOAD_CPU" "$LAT" open -p "$GW_PORT" -B "$BODY" -r 5000 -d 1 -c "$RATE_CONNS" >/dev/null || true # warm-up
	sleep 0.5
	"$LAT" once -p "$GW_PORT" -P /metrics -M GET -v >"$dir/metrics.before" 2>/dev/null || true
	rows0=0
	[[ $logs == true ]] && rows0=$("$LOGFILL" -x "SELECT count(*) FROM logs" "$rdb")
	for t in /proc/"$GW_PID"/task/*; do th0[${t##*/}]=$(cpu_ticks "$GW_PID/task/${t##*/}"); done
	c0=$(cpu_ticks "$GW_PID")
	log "rate ($label): $RATE req/s for $RATE_SECS s over $RATE_CONNS connections, bifrost -w $RATE_WORKERS"
	line=$(on "$LOAD_CPU" "$LAT" open -p "$GW_PORT" -B "$BODY" -r "$RATE" -d "$RATE_SECS" -c "$RATE_CONNS") || true
	c1=$(cpu_ticks "$GW_PID")
	R_THREADS[$label]=$(for t in /proc/"$GW_PID"/task/*; do
		echo $(($(cpu_ticks "$GW_PID/task/${t##*/}") - ${th0[${t##*/}]:-0}))
	done | sort -rn | awk -v hz="$CLK_TCK" '{printf "%s%d", (NR > 1 ? " / " : ""), $1 * 1000 / hz}')
	sleep 1 # the writer drains every 20 ms
	"$LAT" once -p "$GW_PORT" -P /metrics -M GET -v >"$dir/metrics.after" 2>/dev/null || true
	rows1=0 rows2=0
	[[ $logs == true ]] && rows1=$("$LOGFILL" -x "SELECT count(*) FROM logs" "$rdb")
	gw_stop # a clean stop stores every record still in the rings
	[[ $logs == true ]] && rows2=$("$LOGFILL" -x "SELECT count(*) FROM logs" "$rdb")
	log "lat open ($label): $line"
	echo "open $label: $line" >>"$OUT/rate.txt"
	d() { echo $(($(metric "$1" "$dir/metrics.after") - $(metric "$1" "$dir/metrics.before"))); }
	R_LINE[$label]=$line
	R_ROWS[$label]=$((rows1 - rows0))
	R_ROWS_STOP[$label]=$((rows2 - rows0))
	R_WRITTEN[$label]=$(d bifrost_log_store_written_total)
	R_DROPPED[$label]=$(d bifrost_log_store_dropped_total)
	R_DROPPED_ALL[$label]=$(metric bifrost_log_store_dropped_total "$dir/metrics.after")
	R_FAILED[$label]=$(d bifrost_log_store_failed_batches_total)
	R_CPU[$label]=$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$(kv n "$line")" 'BEGIN{ if (n > 0) printf "%.1f", d*1e6/hz/n; else print "?" }')
	log "rate ($label): answered $(kv n "$line"), rows +${R_ROWS[$label]} (after the stop +${R_ROWS_STOP[$label]}), written +${R_WRITTEN[$label]}, dropped +${R_DROPPED[$label]}, failed batches +${R_FAILED[$label]}"
}

if [[ $SKIP_RATE != 1 ]]; then
	alloc_port
	MOCK_PORT=$PORT
	start_bg mock "$MOCK_CPU" "$MOCK" -p "$MOCK_PORT"
	MOCK_PID=$LAST_PID
	wait_port "$MOCK_PID" "$MOCK_PORT" 5 || die "mock did not start: $(cat "$OUT/mock.log")"
	BODY=$OUT/body.json
	printf '{"model":"mock/gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0}' >"$BODY"
	rate_run on true
	rate_run off false
	stop_pid "$MOCK_PID"
	f() { # TITLE EXPR: one row; EXPR is evaluated with L=on, then L=off
		local title=$1 L on_ off_
		L=on on_=$(eval "$2")
		L=off off_=$(eval "$2")
		echo "| $title | $on_ | $off_ |"
	}
	lk() { kv "$1" "${R_LINE[$2]}"; }
	{
		echo "### Logging at $RATE req/s for $RATE_SECS s (bifrost -w $RATE_WORKERS, mock upstream, $RATE_CONNS client connections)"
		echo
		echo "| Figure | logs on | logs off |"
		echo "|---|---|---|"
		echo "| Requests due (rate × seconds) | $((RATE * RATE_SECS)) | $((RATE * RATE_SECS)) |"
		f "Answered (2xx or not)" 'lk n $L'
		f "… of which non-2xx / client errors / still unanswered 3 s after the end" 'echo "$(lk non2xx $L) / $(lk errors $L) / $(lk lost $L)"'
		f "Rate reached (answered per second)" 'echo "$(lk achieved $L)/s"'
		f "Latency p50 / p99 / max (µs)" 'echo "$(lk p50_us $L) / $(lk p99_us $L) / $(lk max_us $L)"'
		f "Rows added to logs.db, 1 s after the run" 'echo "${R_ROWS[$L]}"'
		f "Rows added, after a clean stop" 'echo "${R_ROWS_STOP[$L]}"'
		f "bifrost_log_store_written_total (delta)" 'echo "${R_WRITTEN[$L]}"'
		f "bifrost_log_store_dropped_total (delta; since start)" 'echo "${R_DROPPED[$L]}; ${R_DROPPED_ALL[$L]}"'
		f "bifrost_log_store_failed_batches_total (delta)" 'echo "${R_FAILED[$L]}"'
		f "Gateway CPU per answered request (all threads)" 'echo "${R_CPU[$L]} µs"'
		f "CPU time by thread over the run (ms, busiest first)" 'echo "${R_THREADS[$L]}"'
		f "Client timer lateness p50 / p99 (µs, not charged)" 'echo "$(lk sendlag_p50_us $L) / $(lk sendlag_p99_us $L)"'
		echo
		echo "\"Answered\" stops 3 s after the end of the run: requests still in flight then are answered (and logged) later, so rows can exceed answered by up to $RATE_CONNS; requests the client could not send for want of a free connection count as unanswered."
		echo
	} >>"$TABLES"
fi

# ------------------------------------------------------------------ part 3: the rate into the big store
if [[ $SKIP_BIG != 1 && -s $LOG_DATA/logs.db ]]; then
	DB=$LOG_DATA/logs.db
	alloc_port
	MOCK_PORT=$PORT
	start_bg mock "$MOCK_CPU" "$MOCK" -p "$MOCK_PORT"
	MOCK_PID=$LAST_PID
	wait_port "$MOCK_PID" "$MOCK_PORT" 5 || die "mock did not start: $(cat "$OUT/mock.log")"
	BODY=$OUT/body.json
	printf '{"model":"mock/gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0}' >"$BODY"
	# retention that deletes nothing (the store stays as it is), but runs as always
	gw_cfg "$OUT/big.json" "$MOCK_PORT" '{"enabled":true,"retention_days":36500,"max_bytes":1125899906842624}'
	big_rows=$("$LOGFILL" -x "SELECT count(*) FROM logs" "$DB")
	maxid=$("$LOGFILL" -x "SELECT max(id) FROM logs" "$DB")
	T_GW=$(date +%s.%N)
	gw_start big "$OUT/big.json" "$LOG_DATA" "$RATE_WORKERS"
	gw_settle
	st=$("$LAT" once -p "$GW_PORT" -B "$BODY" | head -1) || true
	[[ $st == status=200 ]] || die "bifrost (big) did not answer the probe with 200 ($st)"
	log "big: $RATE req/s for $BIG_SECS s into the store of $big_rows rows (start-up took $SETTLE_S s, $SETTLE_MS ms CPU)"
	start_bg timeline "" bash -c 'while :; do printf "%s " "$(date +%s.%N)"; curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
		awk '\''$1=="bifrost_log_store_written_total"{w=$2} $1=="bifrost_log_store_dropped_total"{d=$2} END{print w+0, d+0}'\''; sleep 1; done' _ "$GW_PORT"
	TL_PID=$LAST_PID
	line=$(on "$LOAD_CPU" "$LAT" open -p "$GW_PORT" -B "$BODY" -r "$RATE" -d "$BIG_SECS" -c "$RATE_CONNS") || true
	sleep 1
	stop_pid "$TL_PID"
	"$LAT" once -p "$GW_PORT" -P /metrics -M GET -v >"$OUT/big.metrics" 2>/dev/null || true
	gw_stop
	stop_pid "$MOCK_PID"
	log "lat open (big): $line"
	added=$("$LOGFILL" -x "SELECT count(*) FROM logs WHERE id > $maxid" "$DB")
	"$LOGFILL" -x "DELETE FROM logs WHERE id > $maxid; PRAGMA incremental_vacuum" "$DB" # the store as it was
	dropped=$(metric bifrost_log_store_dropped_total "$OUT/big.metrics")
	written=$(metric bifrost_log_store_written_total "$OUT/big.metrics")
	# per second: seconds since the gateway started, dropped in that second; the worst five
	worst=$(awk -v t0="$T_GW" 'NF == 3 { if (n++) printf "%.0f %d\n", $1 - t0, $3 - d; d = $3 }' "$OUT/timeline.log" |
		sort -k2,2nr | awk '$2 > 0 && NR <= 5 {printf "%s%d at %d s", (NR > 1 ? ", " : ""), $2, $1}')
	log "big: answered $(kv n "$line"), rows added $added, written $written, dropped $dropped; worst seconds: ${worst:-none}"
	{
		echo "### Logging at $RATE req/s for $BIG_SECS s into the store of $big_rows rows (bifrost -w $RATE_WORKERS)"
		echo
		echo "| Figure | Value |"
		echo "|---|---|"
		echo "| Requests due / answered / unanswered 3 s after the end | $((RATE * BIG_SECS)) / $(kv n "$line") / $(kv lost "$line") |"
		echo "| Rate reached; latency p50 / p99 / max | $(kv achieved "$line")/s; $(kv p50_us "$line") / $(kv p99_us "$line") / $(kv max_us "$line") µs |"
		echo "| Rows added to logs.db | $added |"
		echo "| bifrost_log_store_written_total / dropped_total | $written / $dropped |"
		echo "| Worst seconds for drops (records dropped, seconds after the gateway started) | ${worst:-none} |"
		echo "| Gateway start-up until idle (the writer's first retention step) | $SETTLE_S s, $SETTLE_MS ms CPU |"
		echo
		echo "The writer runs a retention step at start-up and then once a minute (bifrost.c ldb_retain_step); the rows this run added were deleted afterwards."
		echo
	} >>"$TABLES"
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "# Bifrost-C request log store benchmark"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $NCPU cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
	echo "- Binary: ${BIFROST_VERSION:-?}; commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
	echo "- CPU layout: mock on [${MOCK_CPU:-any}], bifrost (every thread) on [${GW_CPU:-any}], curl/lat on [${LOAD_CPU:-any}]"
	echo "- Load average before $LOAD_BEFORE, after $LOAD_AFTER"
	echo
	cat "$TABLES"
} >"$OUT/RESULTS.md"
echo
cat "$OUT/RESULTS.md"
log "written to bench/out/logstore/RESULTS.md"

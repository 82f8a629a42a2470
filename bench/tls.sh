#!/usr/bin/env bash
# bench/tls.sh -- the HTTPS listener: nginx and bifrost side by side, same
# certificate, same TLS 1.2 suite, both proxying to bench/mock over plain HTTP.
#
# Run by bench/run.sh at its end (so by `./build.sh bench`), or by hand once
# dist/bifrost exists (bash bench/tls.sh). Everything goes to bench/out/tls/;
# the table is printed and written to bench/out/tls/RESULTS.md. In interleaved
# rounds (medians across rounds are quoted) it measures, per certificate:
#   new handshakes     `openssl s_time -new` (HS_CLIENTS processes), and the
#                      proxy's CPU time per handshake from /proc
#   resumed handshakes `openssl s_time -reuse` (session-ID resumption), same
#   keep-alive latency curl: sequential requests on one TLS connection (-w timing
#                      per request), and the same over plain HTTP
#   throughput         h2load --h1 -c 32 -t 1 over TLS (and plain HTTP), with the
#                      proxy's CPU time per request
# See bench/README.md ("TLS") for the method and the caveats.
#
# Environment knobs (defaults in brackets; QUICK=1: one short round):
#   TLS_ROUNDS [3, quick 1]   interleaved rounds
#   CERTS ["ec rsa"]          certificates: ec (P-256) and/or rsa (2048)
#   HS_SECS [2, quick 1]      seconds per s_time run (whole seconds)
#   HS_CLIENTS [2]            s_time processes in parallel per handshake run
#   LAT_N/LAT_W [2000/200, quick 500/100]  sequential requests / warm-up per curl run
#   THR_SECS [3, quick 2] THR_WARM [1] THR_CONNS [32]  h2load run, warm-up, connections
#   CLIENT_CIPHERS [ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256]
#   NGINX_TICKETS [0]         1: leave nginx's session tickets on (bifrost has none)
#   MOCK_CPU/GW_CPU/LOAD_CPU/SEQ_CPU  CPU pinning, as in run.sh; PIN=0 disables
#   BIFROST [$BIFROST_BIN or dist/bifrost]   TLS_PORT_BASE [18600]
set -Eeuo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
OUT=$BENCH/out/tls
BIFROST=${BIFROST:-${BIFROST_BIN:-$ROOT/dist/bifrost}}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	: "${TLS_ROUNDS:=1}" "${HS_SECS:=1}" "${LAT_N:=500}" "${LAT_W:=100}" "${THR_SECS:=2}"
else
	: "${TLS_ROUNDS:=3}" "${HS_SECS:=2}" "${LAT_N:=2000}" "${LAT_W:=200}" "${THR_SECS:=3}"
fi
: "${CERTS:=ec rsa}" "${HS_CLIENTS:=2}" "${THR_WARM:=1}" "${THR_CONNS:=32}" "${NGINX_TICKETS:=0}" "${PIN:=1}"
: "${CLIENT_CIPHERS:=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256}"
NGINX_CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

log() { printf '[tls %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ processes
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
NEXT_PORT=${TLS_PORT_BASE:-18600}
cpu_ticks() { # PIDLIST(comma): utime+stime summed (all threads)
	local total=0 p v
	for p in ${1//,/ }; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------ results
RAW=$OUT/raw.tsv
PH=$OUT/phases.log
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; } # ROUND PROXY METRIC VALUE
get() { awk -F'\t' -v r="$1" -v t="$2" -v m="$3" '$1==r && $2==t && $3==m {v=$4} END{if(v!="")print v}' "$RAW"; }
med() { # PROXY METRIC: median over rounds
	awk -F'\t' -v t="$1" -v m="$2" '$2==t && $3==m && $4!="" {print $4}' "$RAW" | sort -g |
		awk '{a[NR]=$1} END{if(NR==0) exit; if(NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'
}
vals() { awk -F'\t' -v t="$1" -v m="$2" '$2==t && $3==m {printf "%s%s", s, $4; s=" "}' "$RAW"; }
sumx() { awk -F'\t' -v t="$1" -v m="$2" '$2==t && $3==m {s+=$4} END{print s+0}' "$RAW"; }

# ------------------------------------------------------------------ setup
mkdir -p "$OUT"
rm -rf "${OUT:?}"/*
: >"$RAW"
: >"$PH"
ulimit -n 65536 2>/dev/null || true
for tool in gcc taskset ss awk openssl curl nginx h2load; do
	command -v "$tool" >/dev/null || die "$tool not found (./build.sh bench installs nginx and h2load)"
done
[[ -x $BIFROST ]] || die "$BIFROST not built (run ./build.sh)"
cp "$BIFROST" "$OUT/bifrost.bin" # a rebuild during the run must not change the binary under test
BIFROST=$OUT/bifrost.bin
MOCK=$OUT/mock
gcc -O2 -Wall -o "$MOCK" "$BENCH/mock.c"

NCPU=$(nproc)
if [[ $PIN != 1 || $NCPU -lt 2 ]]; then
	: "${MOCK_CPU:=}" "${GW_CPU:=}" "${LOAD_CPU:=}" "${SEQ_CPU:=}"
elif ((NCPU == 2)); then
	: "${MOCK_CPU:=0}" "${GW_CPU:=1}" "${LOAD_CPU:=0}" "${SEQ_CPU:=1}"
else
	: "${MOCK_CPU:=0}" "${GW_CPU:=1}" "${LOAD_CPU:=2-$((NCPU - 1))}" "${SEQ_CPU:=1}"
fi
log "CPUs: $NCPU; mock on [${MOCK_CPU:-any}], proxies on [${GW_CPU:-any}], s_time/h2load on [${LOAD_CPU:-any}], curl on [${SEQ_CPU:-any}]"

# ---- certificates: self-signed, no CA, made for this run
declare -A CERT_LABEL=([ec]="EC P-256" [rsa]="RSA 2048")
read -r -a CERT_LIST <<<"$CERTS"
for c in "${CERT_LIST[@]}"; do
	case $c in
	ec) kopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
	rsa) kopt=(-newkey rsa:2048) ;;
	*) die "CERTS: unknown certificate '$c' (ec, rsa)" ;;
	esac
	openssl req -x509 "${kopt[@]}" -nodes -days 2 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$OUT/$c.key" -out "$OUT/$c.crt" >"$OUT/openssl_req_$c.log" 2>&1 ||
		die "openssl req ($c) failed: $(tail -2 "$OUT/openssl_req_$c.log")"
done
log "certificates: ${CERT_LIST[*]} (self-signed, in bench/out/tls/)"

# ---- the mock upstream
alloc_port
MOCK_PORT=$PORT
start_bg mock "$MOCK_CPU" "$MOCK" -p "$MOCK_PORT"
MOCK_PID=$LAST_PID
wait_port "$MOCK_PID" "$MOCK_PORT" 5 || die "mock did not start: $(cat "$OUT/mock.log")"

# request bodies, as in run.sh: nginx forwards the model as is, bifrost routes mock/…
body() { printf '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0}' "$1"; }
body gpt-4o >"$OUT/body_nginx.json"
body mock/gpt-4o >"$OUT/body_bifrost.json"
AUTH="Authorization: Bearer sk-bench"

# ---- the proxies: one process per (proxy, certificate), each with a plain
# and an HTTPS listener; key "proxy_cert" (nginx_ec, bifrost_rsa, ...)
PROXIES=(nginx bifrost)
declare -A P_PORT S_PORT K_PIDS K_NOTE K_RESTARTS K_LOG
start_nginx() { # KEY CERT NAME
	local k=$1 c=$2 tickets=off
	[[ $NGINX_TICKETS == 1 ]] && tickets=on
	nginx_proxy_start "$3" "        listen 127.0.0.1:${P_PORT[$k]} backlog=4096;
        listen 127.0.0.1:${S_PORT[$k]} ssl backlog=4096;
        ssl_certificate $OUT/$c.crt;
        ssl_certificate_key $OUT/$c.key;
        ssl_protocols TLSv1.2;
        ssl_ciphers $NGINX_CIPHERS;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets $tickets;"
}
start_bifrost() { # KEY CERT NAME
	local k=$1 c=$2 name=$3
	mkdir -p "$OUT/data"
	cat >"$OUT/$k.json" <<EOF
{"providers":[{"name":"mock","provider":"openai","base_url":"http://127.0.0.1:$MOCK_PORT/v1","apiKey":"sk-bench"}],
 "log_requests":false, "logs":{"enabled":false},
 "tls":{"listen":"127.0.0.1:${S_PORT[$k]}","cert_file":"$OUT/$c.crt","key_file":"$OUT/$c.key"}}
EOF
	start_bg "$name" "$GW_CPU" "$BIFROST" -c "$OUT/$k.json" -l "127.0.0.1:${P_PORT[$k]}" -w 1 -d "$OUT/data/$c"
}
launch() { # KEY
	local k=$1 p=${1%_*} c=${1#*_} n=${K_RESTARTS[$1]:-0} name=$1
	((n > 0)) && name="$k.restart$n"
	"start_$p" "$k" "$c" "$name"
	K_LOG[$k]=$OUT/$name.log
	wait_port "$LAST_PID" "${P_PORT[$k]}" 10 && wait_port "$LAST_PID" "${S_PORT[$k]}" 5 || return 1
	if [[ $p == nginx ]]; then sleep 0.2; K_PIDS[$k]=$(nginx_pids "$LAST_PID"); else K_PIDS[$k]=$LAST_PID; fi
}
CURL_TLS=(-k --tlsv1.2 --tls-max 1.2 --ciphers "$CLIENT_CIPHERS")
probe() { # KEY SCHEME: one chat completion must answer 200
	local k=$1 p=${1%_*} port code
	local -a tls=()
	if [[ $2 == https ]]; then port=${S_PORT[$k]} tls=("${CURL_TLS[@]}"); else port=${P_PORT[$k]}; fi
	code=$(curl -sS -o "$OUT/probe_$k.out" -w '%{http_code}' --max-time 5 --http1.1 "${tls[@]}" \
		-H 'Content-Type: application/json' -H "$AUTH" --data-binary @"$OUT/body_$p.json" \
		"$2://127.0.0.1:$port/v1/chat/completions" 2>>"$OUT/probe_$k.err") || true
	[[ $code == 200 ]]
}

KEYS=()
for c in "${CERT_LIST[@]}"; do
	for p in "${PROXIES[@]}"; do
		k=${p}_$c
		alloc_port; P_PORT[$k]=$PORT
		alloc_port; S_PORT[$k]=$PORT
		if ! launch "$k"; then
			die "$k did not start: $(tail -5 "${K_LOG[$k]}" "$OUT/$k/error.log" 2>/dev/null | tr '\n' ' ')"
		fi
		probe "$k" http || die "$k: plain HTTP probe failed: $(head -c 300 "$OUT/probe_$k.out" "$OUT/probe_$k.err" 2>/dev/null | tr '\n' ' ')"
		probe "$k" https || die "$k: HTTPS probe failed: $(head -c 300 "$OUT/probe_$k.out" "$OUT/probe_$k.err" 2>/dev/null | tr '\n' ' ')"
		KEYS+=("$k")
	done
done
BIFROST_VERSION=$("$BIFROST" --version 2>&1 | head -1) || true
NGINX_VERSION=$(nginx -v 2>&1 | sed "s/^nginx version: nginx\///")
OPENSSL_VERSION=$(openssl version)
log "proxies up: ${KEYS[*]} ($BIFROST_VERSION; $NGINX_VERSION)"

# ---- what each negotiates: the benchmark's client cipher list, a resumption
# check (-sess_out / -sess_in), and what OpenSSL's default client list gets
declare -A SUITE SUITE_DEFAULT
s_client() { # PORT ARGS...
	local port=$1
	shift
	timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost "$@" </dev/null 2>&1 || true
}
for k in "${KEYS[@]}"; do
	port=${S_PORT[$k]}
	o=$(s_client "$port" -tls1_2 -cipher "$CLIENT_CIPHERS" -alpn http/1.1 -sess_out "$OUT/sess_$k.pem")
	printf '%s\n' "$o" >"$OUT/s_client_$k.txt"
	proto=$(awk -F': *' '/^ *Protocol *:/{print $2; exit}' <<<"$o")
	ciph=$(awk -F': *' '/^ *Cipher *:/{print $2; exit}' <<<"$o")
	kx=$(awk -F': *' '/^Server Temp Key/{print $2; exit}' <<<"$o")
	alpn=$(awk -F': *' '/^ALPN protocol/{print $2; exit}' <<<"$o")
	o2=$(s_client "$port" -tls1_2 -cipher "$CLIENT_CIPHERS" -alpn http/1.1 -sess_in "$OUT/sess_$k.pem")
	printf '%s\n' "$o2" >>"$OUT/s_client_$k.txt"
	if grep -q '^Reused, ' <<<"$o2"; then res=yes; else res=no; fi
	od=$(s_client "$port")
	printf '%s\n' "$od" >>"$OUT/s_client_$k.txt"
	SUITE[$k]="${proto:-?} ${ciph:-?}, key exchange ${kx:-?}, ALPN ${alpn:-none}, resumed: $res"
	SUITE_DEFAULT[$k]=$(awk -F': *' '/^ *Cipher *:/{print $2; exit}' <<<"$od")
	log "suite $k: ${SUITE[$k]} (OpenSSL default client list: ${SUITE_DEFAULT[$k]:-?})"
done

# ------------------------------------------------------------------ phases
declare -A LAST_PHASE
ensure_healthy() { # KEY: alive and answering over HTTPS, else noted and restarted
	local k=$1 p dead="" n
	for p in ${K_PIDS[$k]//,/ }; do alive "$p" || dead+="pid $p gone; "; done
	if [[ -z $dead ]] && probe "$k" https; then return 0; fi
	n=$((${K_RESTARTS[$k]:-0} + 1))
	K_RESTARTS[$k]=$n
	K_NOTE[$k]="${K_NOTE[$k]:+${K_NOTE[$k]}; }restart #$n after ${LAST_PHASE[$k]:-start-up} (${dead:-HTTPS probe failed})"
	log "$k: restart #$n (${dead:-HTTPS probe failed})"
	((n <= 3)) || return 1
	stop_pid "${K_PIDS[$k]%%,*}"
	launch "$k"
}

phase_hs() { # KEY ROUND MODE(new|reuse): HS_CLIENTS parallel s_time runs
	local k=$1 r=$2 mode=$3 p=${1%_*} c=${1#*_} i c0 c1 t0 t1 n reused rc bad=0 m
	local -a sp=()
	[[ $mode == new ]] && m=hsn || m=hsr
	c0=$(cpu_ticks "${K_PIDS[$k]}")
	t0=$EPOCHREALTIME
	for ((i = 1; i <= HS_CLIENTS; i++)); do
		on "$LOAD_CPU" timeout $((HS_SECS + 20)) openssl s_time -connect "127.0.0.1:${S_PORT[$k]}" "-$mode" \
			-time "$HS_SECS" -tls1_2 -cipher "$CLIENT_CIPHERS" >"$OUT/stime_${m}_$k.$r.$i.txt" 2>&1 &
		sp+=($!)
		PIDS+=($!)
	done
	for i in "${sp[@]}"; do
		rc=0
		wait "$i" || rc=$?
		forget_pid "$i"
		((rc == 0)) || bad=$((bad + 1))
	done
	t1=$EPOCHREALTIME
	c1=$(cpu_ticks "${K_PIDS[$k]}")
	n=$(cat "$OUT/stime_${m}_$k.$r".*.txt | awk '/connections in .* real seconds/{s+=$1} END{print s+0}')
	# s_time prints one character per connection: 'r' when the session was resumed
	reused=$(cat "$OUT/stime_${m}_$k.$r".*.txt | { grep -E '^[*rtsf0-9]+$' || true; } | tr -cd r | wc -c)
	echo "s_time -$mode $k r$r: n=$n reused=$reused wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}') cpu_ticks=$((c1 - c0)) failed_clients=$bad" >>"$PH"
	rec "$r" "$p" "err_$c" "$bad"
	((n > 0)) || return 0
	rec "$r" "$p" "${m}_rate_$c" "$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", n/(b-a)}')"
	rec "$r" "$p" "${m}_cpu_$c" "$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN{printf "%.2f", d*1e6/hz/n}')"
	rec "$r" "$p" "${m}_busy_$c" "$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", d/hz/(b-a)*100}')"
	[[ $mode == reuse ]] && rec "$r" "$p" "hsr_reused_$c" "$(awk -v a="$reused" -v n="$n" 'BEGIN{printf "%.2f", a*100/n}')"
	return 0
}

# curl: LAT_W + LAT_N sequential requests in one process, on one keep-alive
# connection; -w prints each transfer's total time (start of the transfer to
# the last body byte) and whether it had to connect.
curl_cfg() { # FILE URL
	local i
	for ((i = 0; i < LAT_W + LAT_N; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$2"; done >"$1"
}
phase_lat() { # KEY ROUND SCHEME; metric suffix: cert, or "plain"
	local k=$1 r=$2 scheme=$3 p=${1%_*} c=${1#*_} port sfx f st bad reconn
	local -a tls=()
	if [[ $scheme == https ]]; then port=${S_PORT[$k]} sfx=$c tls=("${CURL_TLS[@]}"); else port=${P_PORT[$k]} sfx=plain; fi
	[[ -f $OUT/curl_$k.$scheme.cfg ]] || curl_cfg "$OUT/curl_$k.$scheme.cfg" "$scheme://127.0.0.1:$port/v1/chat/completions"
	f=$OUT/curl_${p}_$sfx.$r.txt
	on "$SEQ_CPU" timeout 120 curl -sS --http1.1 "${tls[@]}" -H 'Content-Type: application/json' -H "$AUTH" \
		--data-binary @"$OUT/body_$p.json" -w '%{http_code} %{num_connects} %{time_total}\n' \
		-K "$OUT/curl_$k.$scheme.cfg" >"$f" 2>"$f.err" || true
	st=$(tail -n +$((LAT_W + 1)) "$f" | awk '$1==200 {print $3*1e6}' | sort -g |
		awk '{a[NR]=$1} END{if(NR==0){print "n=0"; exit} i50=int(NR*0.50+0.999); i99=int(NR*0.99+0.999); printf "n=%d p50=%.1f p99=%.1f\n", NR, a[i50], a[i99]}')
	bad=$(tail -n +$((LAT_W + 1)) "$f" | awk '$1!=200 {n++} END{print n+0}')
	bad=$((bad + LAT_W + LAT_N - $(wc -l <"$f")))
	reconn=$(tail -n +2 "$f" | awk '{n+=$2} END{print n+0}')
	echo "curl $scheme $k r$r: $st non200=$bad reconnects_after_first=$reconn" >>"$PH"
	rec "$r" "$p" "err_$sfx" "$bad"
	rec "$r" "$p" "reconn_$sfx" "$reconn"
	[[ $st == n=0 ]] && return 0
	rec "$r" "$p" "lat50_$sfx" "$(awk '{split($2,x,"="); print x[2]}' <<<"$st")"
	rec "$r" "$p" "lat99_$sfx" "$(awk '{split($3,x,"="); print x[2]}' <<<"$st")"
}

# h2load: THR_CONNS keep-alive connections for THR_WARM + THR_SECS seconds; h2load
# counts the last THR_SECS only, and the proxy's CPU is read over the same window
# (so the THR_CONNS handshakes fall in the warm-up).
phase_thr() { # KEY ROUND SCHEME
	local k=$1 r=$2 scheme=$3 p=${1%_*} c=${1#*_} port sfx f hp c0 c1 t0 t1 rps n2 failed
	local -a tls=()
	if [[ $scheme == https ]]; then port=${S_PORT[$k]} sfx=$c tls=(--ciphers "$CLIENT_CIPHERS"); else port=${P_PORT[$k]} sfx=plain; fi
	f=$OUT/h2load_${p}_$sfx.$r.txt
	on "$LOAD_CPU" timeout $((THR_WARM + THR_SECS + 20)) h2load --h1 -c "$THR_CONNS" -t 1 -D "$THR_SECS" \
		--warm-up-time="$THR_WARM" "${tls[@]}" -d "$OUT/body_$p.json" -H 'content-type: application/json' -H "$AUTH" \
		"$scheme://127.0.0.1:$port/v1/chat/completions" >"$f" 2>&1 &
	hp=$!
	PIDS+=("$hp")
	sleep "$THR_WARM"
	c0=$(cpu_ticks "${K_PIDS[$k]}")
	t0=$EPOCHREALTIME
	wait "$hp" || true
	forget_pid "$hp"
	t1=$EPOCHREALTIME
	c1=$(cpu_ticks "${K_PIDS[$k]}")
	rps=$(awk '/^finished in/{gsub(",", "", $4); print $4}' "$f")
	n2=$(awk '/^status codes:/{print $3}' "$f")
	failed=$(awk '/^requests:/{for(i=1;i<=NF;i++){if($i=="failed,"||$i=="errored,"||$i=="timeout")f+=$(i-1)}} END{print f+0}' "$f")
	failed=$((failed + $(awk '/^status codes:/{s=$5+$7+$9} END{print s+0}' "$f")))
	echo "h2load $scheme $k r$r: rps=${rps:-?} 2xx=${n2:-0} failed+non2xx=$failed cpu_ticks=$((c1 - c0)) $(awk '/^Cipher:/{print; exit}' "$f")" >>"$PH"
	rec "$r" "$p" "err_$sfx" "$failed"
	[[ -n $rps && ${n2:-0} -gt 0 ]] || return 0
	rec "$r" "$p" "thr_$sfx" "$rps"
	rec "$r" "$p" "thrcpu_$sfx" "$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$n2" 'BEGIN{printf "%.3f", d*1e6/hz/n}')"
	rec "$r" "$p" "thrbusy_$sfx" "$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", d/hz/(b-a)*100}')"
	if [[ $scheme == https ]]; then
		awk '/^Cipher:/{sub(/^Cipher: */, ""); print; exit}' "$f" >"$OUT/h2load_cipher_$k"
	fi
	return 0
}

run() { # PHASE KEY ROUND ARG
	ensure_healthy "$2" || return 0
	"phase_$1" "$2" "$3" "$4"
	LAST_PHASE[$2]="$1 $4 of round $3"
}

# ---- warm-up: a few requests and handshakes on each
for k in "${KEYS[@]}"; do
	# shellcheck disable=SC2046 # 20 URLs, one word each
	on "$SEQ_CPU" curl -sS -o /dev/null --http1.1 "${CURL_TLS[@]}" -H 'Content-Type: application/json' -H "$AUTH" --data-binary @"$OUT/body_${k%_*}.json" \
		$(for ((i = 0; i < 20; i++)); do printf 'https://127.0.0.1:%s/v1/chat/completions ' "${S_PORT[$k]}"; done) >/dev/null 2>&1 || true
	on "$LOAD_CPU" timeout 10 h2load --h1 -c 4 -n 400 --ciphers "$CLIENT_CIPHERS" -d "$OUT/body_${k%_*}.json" -H "$AUTH" \
		"https://127.0.0.1:${S_PORT[$k]}/v1/chat/completions" >/dev/null 2>&1 || true
done

# ---- interleaved rounds; the plain-HTTP figures use the first certificate's processes
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$SECONDS
C0=${CERT_LIST[0]}
for ((r = 1; r <= TLS_ROUNDS; r++)); do
	if ((r % 2)); then order=(nginx bifrost); else order=(bifrost nginx); fi
	log "round $r/$TLS_ROUNDS: ${order[*]}"
	for c in "${CERT_LIST[@]}"; do for p in "${order[@]}"; do run hs "${p}_$c" "$r" new; done; done
	for c in "${CERT_LIST[@]}"; do for p in "${order[@]}"; do run hs "${p}_$c" "$r" reuse; done; done
	for p in "${order[@]}"; do
		run lat "${p}_$C0" "$r" http
		for c in "${CERT_LIST[@]}"; do run lat "${p}_$c" "$r" https; done
	done
	for p in "${order[@]}"; do run thr "${p}_$C0" "$r" http; done
	for c in "${CERT_LIST[@]}"; do for p in "${order[@]}"; do run thr "${p}_$c" "$r" https; done; done
done
log "rounds done in $((SECONDS - T_START)) s"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for k in "${KEYS[@]}"; do
	for p in ${K_PIDS[$k]//,/ }; do
		alive "$p" || K_NOTE[$k]="${K_NOTE[$k]:+${K_NOTE[$k]}; }process $p died during the run (see ${K_LOG[$k]#"$BENCH/"})"
	done
done

# ---- derived, per round: per-core capacity, TLS added latency and CPU
for ((r = 1; r <= TLS_ROUNDS; r++)); do
	for p in "${PROXIES[@]}"; do
		for c in "${CERT_LIST[@]}"; do
			for m in hsn hsr; do
				v=$(get "$r" "$p" "${m}_cpu_$c")
				[[ -n $v ]] && rec "$r" "$p" "${m}_cap_$c" "$(awk -v v="$v" 'BEGIN{if (v > 0) printf "%.1f", 1e6/v}')"
			done
			for q in 50 99; do
				a=$(get "$r" "$p" "lat${q}_$c") b=$(get "$r" "$p" "lat${q}_plain")
				[[ -n $a && -n $b ]] && rec "$r" "$p" "add${q}_$c" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", a-b}')"
			done
			a=$(get "$r" "$p" "thrcpu_$c") b=$(get "$r" "$p" "thrcpu_plain")
			[[ -n $a && -n $b ]] && rec "$r" "$p" "tlscpu_$c" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a-b}')"
		done
	done
done

# ------------------------------------------------------------------ table
fmt() { # VALUE DECIMALS
	[[ -n $1 ]] || { printf 'n/a'; return; }
	awk -v v="$1" -v d="$2" 'BEGIN{printf "%.*f", d, v}'
}
# ratio METRIC KIND: bifrost / nginx; "round": median of the per-round ratios,
# "med": ratio of the medians (for differences, which can be near zero)
ratio() {
	local m=$1 kind=$2 r a b
	if [[ $kind == med ]]; then
		a=$(med nginx "$m") b=$(med bifrost "$m")
		# a ratio of two differences means something only when both are positive
		[[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN{if (a > 0 && b > 0) printf "%.2f", b/a; else printf "n/a"}' || printf 'n/a'
		return
	fi
	for ((r = 1; r <= TLS_ROUNDS; r++)); do
		a=$(get "$r" nginx "$m") b=$(get "$r" bifrost "$m")
		[[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN{if (a != 0) print b/a}'
	done | sort -g | awk '{x[NR]=$1} END{if(NR==0){printf "n/a"; exit} if(NR%2) v=x[(NR+1)/2]; else v=(x[NR/2]+x[NR/2+1])/2; printf "%.2f", v}'
}
TABLE=$OUT/table.md
row() { # LABEL METRIC DECIMALS RATIOKIND [BUSY-METRIC]
	local n b
	n=$(fmt "$(med nginx "$2")" "$3") b=$(fmt "$(med bifrost "$2")" "$3")
	if [[ -n ${5:-} ]]; then
		[[ $n == n/a ]] || n+=" ($(fmt "$(med nginx "$5")" 0)%)"
		[[ $b == n/a ]] || b+=" ($(fmt "$(med bifrost "$5")" 0)%)"
	fi
	printf '| %s | %s | %s | %s |\n' "$1" "$n" "$b" "$(ratio "$2" "$4")"
}
{
	echo "| metric (median of $TLS_ROUNDS rounds) | nginx | bifrost | bifrost/nginx |"
	echo "|---|---|---|---|"
	for c in "${CERT_LIST[@]}"; do
		L=${CERT_LABEL[$c]}
		row "$L: new handshakes/s per core (1 s / proxy CPU per handshake)" "hsn_cap_$c" 0 round
		row "$L: proxy CPU per new handshake, µs" "hsn_cpu_$c" 1 round
		row "$L: new handshakes/s reached, $HS_CLIENTS× s_time (proxy CPU busy)" "hsn_rate_$c" 0 round "hsn_busy_$c"
		row "$L: resumed handshakes/s per core" "hsr_cap_$c" 0 round
		row "$L: proxy CPU per resumed handshake, µs" "hsr_cpu_$c" 1 round
		row "$L: resumed handshakes/s reached (proxy CPU busy)" "hsr_rate_$c" 0 round "hsr_busy_$c"
		row "$L: keep-alive request over TLS, p50 µs (curl, 1 conn)" "lat50_$c" 1 round
		row "$L: keep-alive request over TLS, p99 µs" "lat99_$c" 1 round
		row "$L: TLS added vs plain HTTP, p50 µs" "add50_$c" 1 med
		row "$L: TLS added vs plain HTTP, p99 µs" "add99_$c" 1 med
		row "$L: throughput, $THR_CONNS TLS conns, req/s (proxy CPU busy)" "thr_$c" 0 round "thrbusy_$c"
		row "$L: proxy CPU per request, $THR_CONNS TLS conns, µs" "thrcpu_$c" 2 round
		row "$L: TLS CPU added per request (TLS − plain), µs" "tlscpu_$c" 2 med
	done
	row "plain HTTP: keep-alive request, p50 µs (curl, 1 conn)" lat50_plain 1 round
	row "plain HTTP: keep-alive request, p99 µs" lat99_plain 1 round
	row "plain HTTP: throughput, $THR_CONNS conns, req/s (proxy CPU busy)" thr_plain 0 round thrbusy_plain
	row "plain HTTP: proxy CPU per request, $THR_CONNS conns, µs" thrcpu_plain 2 round
	errs_n=0 errs_b=0
	for s in "${CERT_LIST[@]}" plain; do
		errs_n=$((errs_n + $(sumx nginx "err_$s"))) errs_b=$((errs_b + $(sumx bifrost "err_$s")))
	done
	printf '| errors (failed s_time clients, non-200, h2load failed), all rounds | %s | %s | |\n' "$errs_n" "$errs_b"
	rs_n=0 rs_b=0
	for c in "${CERT_LIST[@]}"; do rs_n=$((rs_n + ${K_RESTARTS[nginx_$c]:-0})) rs_b=$((rs_b + ${K_RESTARTS[bifrost_$c]:-0})); done
	printf '| restarts | %s | %s | |\n' "$rs_n" "$rs_b"
} >"$TABLE"

NOTES=$OUT/notes.md
{
	echo "Suites negotiated (openssl s_client -tls1_2 -cipher $CLIENT_CIPHERS -alpn http/1.1; then -sess_in to resume):"
	echo
	for k in "${KEYS[@]}"; do
		echo "- $k: ${SUITE[$k]}; h2load: $(cat "$OUT/h2load_cipher_$k" 2>/dev/null || echo '?'); OpenSSL's default client cipher list would get ${SUITE_DEFAULT[$k]:-?}"
	done
	echo
	echo "Per-round values (nginx | bifrost):"
	echo
	for c in "${CERT_LIST[@]}" plain; do
		for m in hsn_cpu hsn_rate hsr_cpu hsr_rate hsr_reused lat50 lat99 add50 thr thrcpu thrbusy tlscpu; do
			[[ -n $(vals nginx "${m}_$c")$(vals bifrost "${m}_$c") ]] || continue
			echo "- ${m}_$c: $(vals nginx "${m}_$c") | $(vals bifrost "${m}_$c")"
		done
	done
	rc_n=$(for s in "${CERT_LIST[@]}" plain; do sumx nginx "reconn_$s"; done | awk '{s+=$1} END{print s+0}')
	rc_b=$(for s in "${CERT_LIST[@]}" plain; do sumx bifrost "reconn_$s"; done | awk '{s+=$1} END{print s+0}')
	echo "- curl reconnects after the first request (should be 0): nginx $rc_n, bifrost $rc_b"
	for k in "${KEYS[@]}"; do [[ -z ${K_NOTE[$k]:-} ]] || echo "- $k: ${K_NOTE[$k]}"; done
	echo
	echo "Load average before / after the rounds: $LOAD_BEFORE / $LOAD_AFTER ($NCPU CPUs; the harness itself accounts for about 2)."
	if awk -v l="${LOAD_BEFORE%% *}" -v a="${LOAD_AFTER%% *}" -v n="$NCPU" 'BEGIN{exit !(l > n || a > n + 1)}'; then
		echo "**The host was busy: other processes shared the pinned cores; absolute figures are inflated and noisy, trust the ratios more.**"
	fi
} >"$NOTES"

COMMIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "no commit")
MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
	echo "# Bifrost-C TLS benchmark"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs ($MODEL), commit $COMMIT, $BIFROST_VERSION, nginx $NGINX_VERSION, $OPENSSL_VERSION."
	echo "Proxies on CPU ${GW_CPU:-any} (nginx 1 worker, bifrost -w 1, logs off), mock on ${MOCK_CPU:-any}, s_time and h2load on ${LOAD_CPU:-any}, curl on ${SEQ_CPU:-any}."
	echo "TLS 1.2 only, client cipher list $CLIENT_CIPHERS; nginx: ssl_session_cache shared:SSL:1m, session tickets $([[ $NGINX_TICKETS == 1 ]] && echo on || echo off)."
	echo "s_time: $HS_CLIENTS processes × ${HS_SECS} s; curl: $LAT_N requests after $LAT_W warm-up; h2load: --h1 -c $THR_CONNS -t 1, ${THR_WARM} s warm-up + ${THR_SECS} s."
	echo
	cat "$TABLE"
	echo
	cat "$NOTES"
	echo
	echo "Method and caveats: bench/README.md (TLS). Raw output: bench/out/tls/ (phases.log, raw.tsv, each tool's output)."
} >"$OUT/RESULTS.md"

echo
cat "$TABLE"
echo
cat "$NOTES"
echo
log "written to bench/out/tls/RESULTS.md"

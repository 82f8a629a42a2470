# bench/lib.sh -- what the bench scripts share (sourced by run.sh, logstore.sh, tls.sh):
# background processes ended on any exit, CPU pinning, free ports, a throw-away Redis. The
# sourcing script defines log() first and sets NEXT_PORT (its first port) after.

# Every background process a script starts is recorded in PIDS and ended by cleanup() on
# any exit (normal, error, Ctrl-C, TERM).
declare -a PIDS=()
LAST_PID=

alive() {
	local st
	[[ -r /proc/$1/stat ]] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# stop_pid PID: TERM, up to 10 s (a gateway drains and stores its last log records), KILL.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
	forget_pid "$pid"
}

cleanup() {
	local rc=$? pid i any
	trap - EXIT INT TERM
	if ((${#PIDS[@]})); then
		for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
		for ((i = 0; i < 100; i++)); do
			any=0
			for pid in "${PIDS[@]}"; do alive "$pid" && any=1; done
			((any)) || break
			sleep 0.1
		done
		for pid in "${PIDS[@]}"; do
			if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
		done
		wait 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# start_bg NAME CPULIST CMD...: CMD in the background (pinned if CPULIST is not empty),
# output to $OUT/NAME.log; its pid in LAST_PID.
start_bg() {
	local name=$1 cpu=$2
	shift 2
	if [[ -n $cpu ]]; then
		taskset -c "$cpu" "$@" >"$OUT/$name.log" 2>&1 &
	else
		"$@" >"$OUT/$name.log" 2>&1 &
	fi
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# on CPULIST CMD...: CMD in the foreground, pinned if CPULIST is set.
on() {
	local cpu=$1
	shift
	if [[ -n $cpu ]]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

# alloc_port: the next free port from NEXT_PORT on, in PORT.
PORT=
alloc_port() {
	while ss -Hltn "sport = :$NEXT_PORT" 2>/dev/null | grep -q . ||
		(: >"/dev/tcp/127.0.0.1/$NEXT_PORT") 2>/dev/null; do
		NEXT_PORT=$((NEXT_PORT + 1))
	done
	PORT=$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 1))
}

# wait_port PID PORT SECS: until PORT accepts, or PID died, or SECS passed.
wait_port() {
	local pid=$1 port=$2 secs=$3 i
	for ((i = 0; i < secs * 20; i++)); do
		alive "$pid" || return 1
		if (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

# nginx_proxy_start NAME SERVER_LINES: nginx (1 worker, pinned to GW_CPU, logs off) as a
# keep-alive reverse proxy to the mock on MOCK_PORT, its config in $OUT/NAME/; SERVER_LINES
# are the server block's listen (and ssl) directives. Its pid in LAST_PID.
nginx_proxy_start() {
	local name=$1 server=$2 dir=$OUT/$1 user_line=""
	mkdir -p "$dir/tmp"
	((EUID == 0)) && user_line="user root;"
	cat >"$dir/nginx.conf" <<NGINX
# written by ${0##*/} for one run
$user_line
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log error;
worker_rlimit_nofile 65536;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
$server
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
NGINX
	start_bg "$name" "$GW_CPU" nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
}

# nginx_pids MASTER -> "master,worker...": the processes whose CPU time counts.
nginx_pids() {
	local kids
	kids=$(pgrep -P "$1" 2>/dev/null | paste -sd, -) || true
	echo "$1${kids:+,$kids}"
}

# redis_start NAME CPULIST PORT: a throw-away redis-server (no RDB, no AOF, loopback only,
# its working directory $OUT/NAME/) on PORT; its pid in LAST_PID. Returns non-zero if it
# does not answer PING within 10 s (or died). Ended like every other process (cleanup).
redis_start() {
	local name=$1 cpu=$2 port=$3 i
	mkdir -p "$OUT/$name"
	start_bg "$name" "$cpu" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$OUT/$name" --daemonize no --logfile '' --protected-mode yes
	for ((i = 0; i < 100; i++)); do
		alive "$LAST_PID" || return 1
		[[ $(redis_cmd "$port" PING 2>/dev/null) == PONG ]] && return 0
		sleep 0.1
	done
	return 1
}

# redis_cmd PORT ARGS...: one command through redis-cli (at most 5 s), raw output.
redis_cmd() {
	local port=$1
	shift
	timeout 5 redis-cli -h 127.0.0.1 -p "$port" --raw "$@"
}

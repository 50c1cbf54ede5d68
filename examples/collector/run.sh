#!/usr/bin/env bash
# run.sh: the aof2 observability stack without Docker.
#
# Builds what is missing into .bin/ (cached), then runs Jaeger, the collector
# (aof2col) and Prometheus on 127.0.0.1 only, with PIDs and logs under .state/.
# See usage() below, or run `./run.sh help`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$HERE/.bin
STATE=$HERE/.state
GO=${GO:-go}
# Seconds to wait for a component to become ready, and for one to stop.
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}

COLLECTOR_BIN=$BIN/aof2col
JAEGER_BIN=$BIN/jaeger
PROM_ROOT=$BIN/prom
PROMETHEUS_BIN_SET=${PROMETHEUS_BIN:-}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-$PROM_ROOT/usr/bin/prometheus}
PROMTOOL_BIN=${PROMTOOL_BIN:-$PROM_ROOT/usr/bin/promtool}
# Debian's prometheus package holds the classic web UI (templates, its own
# JS and CSS) under usr/share/prometheus/web, whose static/ links to the
# JavaScript of separate packages (usr/share/javascript/...). They are all
# unpacked into the same root, so those relative links resolve.
PROM_WEB=$PROM_ROOT/usr/share/prometheus/web
PROM_PACKAGES=(prometheus fonts-glyphicons-halflings libjs-bootstrap4
	libjs-d3 libjs-eonasdan-bootstrap-datetimepicker libjs-jquery
	libjs-jquery-hotkeys libjs-moment libjs-moment-timezone libjs-mustache
	libjs-popper.js libjs-rickshaw)
# The aof2 console templates (served at /consoles/), and the directory that
# run.sh assembles from our library plus the package's prom.lib.
CONSOLES=$HERE/prometheus/consoles
CONSOLE_LIBS_SRC=$HERE/prometheus/console_libraries

COLLECTOR_CONFIG=$HERE/otelcol/config.yaml
JAEGER_CONFIG=$HERE/tools/jaeger-local.yaml
PROM_CONFIG=$HERE/prometheus/prometheus.yml
PROM_COMPOSE_CONFIG=$HERE/prometheus/prometheus-compose.yml

# Start order; `down` stops them in reverse.
COMPONENTS=(jaeger otelcol prometheus)

usage() {
	cat <<EOF
usage: $(basename "$0") COMMAND

  up            build what is missing, start jaeger, otelcol and prometheus on
                127.0.0.1 and wait until each is ready
  down          stop exactly the processes that 'up' recorded (TERM, then KILL)
  status        print each component up/down with its ports
  logs [NAME]   print the last lines of each log (or of NAME: ${COMPONENTS[*]});
                LOG_LINES=N sets how many, FOLLOW=1 follows
  validate      check the collector, Jaeger and Prometheus configs (starts no server)
  build         build or fetch the binaries only

Ports: collector OTLP gRPC 4317, HTTP 4318, Prometheus exporter 8889, own
metrics 8888, health 13134; Jaeger UI/API 16686, OTLP 14317/14318, health
13133; Prometheus 9090 (dashboards at /consoles/aof2.html and
/consoles/aof2-raft.html, PromQL at /classic/graph).
State (PIDs, logs, Prometheus TSDB): $STATE
Binaries: $BIN
Environment: READY_TIMEOUT (s, default 60), STOP_TIMEOUT (s, default 10),
PROMETHEUS_BIN and PROMTOOL_BIN to use Prometheus binaries of your own.
EOF
}

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- building

# newer_than_all BIN FILE...: true if BIN exists and is newer than every FILE.
newer_than_all() {
	local bin=$1
	shift
	[[ -x $bin ]] || return 1
	local f
	for f in "$@"; do
		[[ $bin -nt $f ]] || return 1
	done
}

build_collector() {
	local src=$HERE/otelcol
	if newer_than_all "$COLLECTOR_BIN" "$src/go.mod" "$src/go.sum" "$src/main.go"; then
		return
	fi
	log "building the collector into $COLLECTOR_BIN (about 1.5 min cold)"
	mkdir -p "$BIN"
	local start=$SECONDS
	(cd "$src" && "$GO" build -trimpath -o "$COLLECTOR_BIN" .)
	log "collector built in $((SECONDS - start)) s"
}

build_jaeger() {
	local src=$HERE/tools
	if newer_than_all "$JAEGER_BIN" "$src/go.mod" "$src/go.sum"; then
		return
	fi
	log "building Jaeger into $JAEGER_BIN (about 3 min cold)"
	mkdir -p "$BIN"
	local start=$SECONDS
	(cd "$src" && "$GO" build -trimpath -o "$JAEGER_BIN" github.com/jaegertracing/jaeger/cmd/jaeger)
	log "Jaeger built in $((SECONDS - start)) s"
}

# fetch_prometheus unpacks Debian's prometheus package, and the packages
# holding the JavaScript and fonts its web UI links to, into .bin/prom. It
# only downloads and extracts the .debs (no dpkg -i, no root needed beyond
# what apt-get download needs), so no maintainer script runs and no daemon
# starts. A stamp file names the packages unpacked, so a .bin from an older
# run.sh (the binary without its web files) is completed.
fetch_prometheus() {
	if [[ -n ${PROMETHEUS_BIN_SET:-} ]]; then
		[[ -x $PROMETHEUS_BIN && -x $PROMTOOL_BIN ]] ||
			die "PROMETHEUS_BIN=$PROMETHEUS_BIN or PROMTOOL_BIN=$PROMTOOL_BIN is no executable"
		return
	fi
	local stamp=$PROM_ROOT/.packages want="${PROM_PACKAGES[*]} popper-umd"
	if [[ -x $PROMETHEUS_BIN && -x $PROMTOOL_BIN && -f $stamp && $(<"$stamp") == "$want" ]]; then
		return
	fi
	if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
		die "Prometheus is missing and this is no Debian-like system (no apt-get/dpkg-deb).
  Install Prometheus yourself and set PROMETHEUS_BIN and PROMTOOL_BIN, or build it:
  go install github.com/prometheus/prometheus/cmd/{prometheus,promtool}@v0.316.0"
	fi
	log "fetching Debian's prometheus package and its web UI's packages into $PROM_ROOT"
	local tmp
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && apt-get download "${PROM_PACKAGES[@]}" >/dev/null 2>&1); then
		log "apt-get download failed; running apt-get update once and retrying"
		apt-get update -qq >/dev/null 2>&1 || true
		if ! (cd "$tmp" && apt-get download "${PROM_PACKAGES[@]}"); then
			rm -rf "$tmp"
			die "could not download Debian's packages (apt-get download ${PROM_PACKAGES[*]}).
  Install Prometheus yourself and set PROMETHEUS_BIN and PROMTOOL_BIN, or build it:
  go install github.com/prometheus/prometheus/cmd/{prometheus,promtool}@v0.316.0"
		fi
	fi
	rm -rf "$PROM_ROOT"
	mkdir -p "$PROM_ROOT"
	local deb
	for deb in "$tmp"/*.deb; do
		dpkg-deb -x "$deb" "$PROM_ROOT"
	done
	rm -rf "$tmp"
	[[ -x $PROMETHEUS_BIN && -x $PROMTOOL_BIN ]] ||
		die "the prometheus package holds no $PROMETHEUS_BIN or $PROMTOOL_BIN"
	[[ -f $PROM_WEB/templates/_base.html && -f $PROM_WEB/static/rickshaw/rickshaw.min.js ]] ||
		die "the unpacked packages hold no web UI under $PROM_WEB"
	# The web UI loads static/popper.js/popper.min.js, which libjs-popper.js
	# ships as an ES module (a SyntaxError in a <script>); its umd/ holds the
	# browser build.
	ln -sfn ../../../javascript/popper.js/umd "$PROM_WEB/static/popper.js"
	[[ -f $PROM_WEB/static/popper.js/popper.min.js ]] || die "no popper.js browser build under $PROM_WEB/static"
	echo "$want" >"$stamp"
	log "Prometheus: $("$PROMETHEUS_BIN" --version 2>&1 | head -n 1)"
}

# prom_has_flag FLAG: true if the Prometheus binary knows --FLAG (Debian's
# 2.42 has --web.local-assets; upstream builds do not). The help text is
# read whole before grep looks at it: piped into grep -q under pipefail,
# the binary could die of SIGPIPE when grep stopped at the match (3 in 200
# tries here), and Prometheus then started without its web files.
prom_has_flag() {
	local help
	help=$("$PROMETHEUS_BIN" --help 2>&1 || true)
	grep -q -- "--$1[=[:space:]]" <<<"$help"
}

# prepare_console_libs assembles $STATE/console_libraries: our aof2.lib and
# the package's prom.lib (the console library: PromConsole.Graph's page
# helpers, time control, query drilldowns). Prometheus reads one directory.
prepare_console_libs() {
	local dst=$STATE/console_libraries
	rm -rf "$dst"
	mkdir -p "$dst"
	cp "$CONSOLE_LIBS_SRC"/*.lib "$dst"/
	local prom_lib
	for prom_lib in "$PROM_ROOT/usr/share/doc/prometheus/examples/console_libraries/prom.lib" \
		"${PROM_CONSOLE_LIB:-}"; do
		if [[ -n $prom_lib && -f $prom_lib ]]; then
			cp "$prom_lib" "$dst/prom.lib"
		fi
	done
	[[ -f $dst/prom.lib ]] || log "warning: no prom.lib (Prometheus' console library); the /consoles pages will not render (set PROM_CONSOLE_LIB)"
}

build_all() {
	build_collector
	build_jaeger
	fetch_prometheus
}

# ---------------------------------------------------------------- components

# Per component: the binary, the command line, the readiness URL, the ports.
comp_bin() {
	case $1 in
	jaeger) echo "$JAEGER_BIN" ;;
	otelcol) echo "$COLLECTOR_BIN" ;;
	prometheus) echo "$PROMETHEUS_BIN" ;;
	*) die "unknown component '$1' (one of: ${COMPONENTS[*]})" ;;
	esac
}

# comp_args NAME: set ARGS to the command-line arguments of NAME.
comp_args() {
	case $1 in
	jaeger) ARGS=("--config=$JAEGER_CONFIG") ;;
	otelcol) ARGS=("--config=$COLLECTOR_CONFIG") ;;
	prometheus)
		ARGS=("--config.file=$PROM_CONFIG"
			"--storage.tsdb.path=$STATE/prometheus-data"
			"--web.listen-address=127.0.0.1:9090"
			"--enable-feature=exemplar-storage"
			"--web.console.templates=$CONSOLES"
			"--web.console.libraries=$STATE/console_libraries")
		# Debian's binary looks for its web UI in /usr/share/prometheus/web
		# unless told where the unpacked package put it.
		if [[ -d $PROM_WEB ]] && prom_has_flag web.local-assets; then
			ARGS+=("--web.local-assets=$PROM_WEB/")
		fi
		;;
	esac
}

comp_ready_url() {
	case $1 in
	jaeger) echo "http://127.0.0.1:13133/status" ;;
	otelcol) echo "http://127.0.0.1:13134/" ;;
	prometheus) echo "http://127.0.0.1:9090/-/ready" ;;
	esac
}

comp_ports() {
	case $1 in
	jaeger) echo "query/UI 127.0.0.1:16686, OTLP 127.0.0.1:14317 (gRPC) 127.0.0.1:14318 (HTTP), health 127.0.0.1:13133" ;;
	otelcol) echo "OTLP 127.0.0.1:4317 (gRPC) 127.0.0.1:4318 (HTTP), exporter 127.0.0.1:8889, self 127.0.0.1:8888, health 127.0.0.1:13134" ;;
	prometheus) echo "127.0.0.1:9090" ;;
	esac
}

# comp_listen_ports NAME: the TCP ports NAME listens on, all on 127.0.0.1.
comp_listen_ports() {
	case $1 in
	jaeger) echo 16686 16685 14317 14318 13133 ;;
	otelcol) echo 4317 4318 8888 8889 13134 ;;
	prometheus) echo 9090 ;;
	esac
}

# port_in_use PORT: true if something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# check_ports_free: before anything starts, fail if a port of a component
# that is not running yet is taken by another process (say a second stack
# or a system Prometheus), rather than mistaking that process for ours.
check_ports_free() {
	local name port busy=()
	for name in "${COMPONENTS[@]}"; do
		recorded_pid "$name" >/dev/null && continue
		for port in $(comp_listen_ports "$name"); do
			port_in_use "$port" && busy+=("127.0.0.1:$port ($name)")
		done
	done
	((${#busy[@]} == 0)) ||
		die "these ports are taken by processes that this script did not start: ${busy[*]}
  (ss -ltnp shows who holds them)"
}

pid_file() { echo "$STATE/$1.pid"; }
log_file() { echo "$STATE/$1.log"; }

# running PID: true if PID exists and is no zombie.
running() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z ]]
}

# alive PID BIN: true if PID is running BIN. Checking the executable guards
# against a PID that the kernel has given to another process since it was
# recorded.
alive() {
	local pid=$1 exe
	running "$pid" || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ ${exe% (deleted)} == "$(readlink -f "$2")" ]]
}

# recorded_pid NAME: print the recorded PID of NAME if that process is alive.
recorded_pid() {
	local f pid
	f=$(pid_file "$1")
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	alive "$pid" "$(comp_bin "$1")" || return 1
	echo "$pid"
}

show_log_tail() {
	local f
	f=$(log_file "$1")
	log "last lines of $f:"
	tail -n "${LOG_LINES:-30}" "$f" >&2 || true
}

start_component() {
	local name=$1 bin pid url
	bin=$(comp_bin "$name")
	if pid=$(recorded_pid "$name"); then
		log "$name is already running (pid $pid)"
		return
	fi
	rm -f "$(pid_file "$name")"
	if [[ $name == prometheus ]]; then
		rm -rf "$STATE/prometheus-data" # a fresh TSDB each time
		prepare_console_libs
	fi
	local ARGS=()
	comp_args "$name"
	nohup "$bin" "${ARGS[@]}" >"$(log_file "$name")" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$(pid_file "$name")"
	url=$(comp_ready_url "$name")
	log "started $name (pid $pid), waiting for $url"
	local deadline=$((SECONDS + READY_TIMEOUT))
	while :; do
		if ! running "$pid"; then
			show_log_tail "$name"
			fail_up "$name exited before it was ready"
		fi
		if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
			break
		fi
		if ((SECONDS >= deadline)); then
			show_log_tail "$name"
			fail_up "$name was not ready within ${READY_TIMEOUT}s ($url)"
		fi
		sleep 0.25
	done
	log "$name is ready: $(comp_ports "$name")"
}

# fail_up stops whatever 'up' started, so a failed start leaves nothing
# running; the logs stay in $STATE.
fail_up() {
	log "error: $*"
	log "stopping what was started (logs stay in $STATE)"
	cmd_down || true
	exit 1
}

stop_component() {
	local name=$1 f pid bin
	f=$(pid_file "$name")
	[[ -f $f ]] || return 0
	pid=$(<"$f")
	bin=$(comp_bin "$name")
	if ! alive "$pid" "$bin"; then
		log "$name (pid $pid) is not running"
		rm -f "$f"
		return 0
	fi
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + STOP_TIMEOUT))
	while alive "$pid" "$bin" && ((SECONDS < deadline)); do
		sleep 0.2
	done
	if alive "$pid" "$bin"; then
		log "$name (pid $pid) still runs after ${STOP_TIMEOUT}s; sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 5))
		while alive "$pid" "$bin" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		alive "$pid" "$bin" && die "$name (pid $pid) survived KILL"
	fi
	rm -f "$f"
}

# ---------------------------------------------------------------- commands

need_curl() {
	command -v curl >/dev/null || die "curl is needed to check readiness (apt-get install curl)"
}

cmd_up() {
	need_curl
	build_all
	mkdir -p "$STATE"
	check_ports_free
	local start=$SECONDS name
	for name in "${COMPONENTS[@]}"; do
		start_component "$name"
	done
	log "stack is up in $((SECONDS - start)) s; send OTLP to 127.0.0.1:4317, then open
  http://127.0.0.1:9090/consoles/aof2.html (dashboard), http://127.0.0.1:9090/classic/graph (PromQL),
  http://127.0.0.1:16686/api/traces?service=aof2-workload (Jaeger's API: this Jaeger build has no UI)"
}

cmd_down() {
	local i
	for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
		stop_component "${COMPONENTS[i]}"
	done
}

cmd_status() {
	local name pid state rc=0
	for name in "${COMPONENTS[@]}"; do
		if pid=$(recorded_pid "$name"); then
			if curl -fsS -o /dev/null --max-time 2 "$(comp_ready_url "$name")" 2>/dev/null; then
				state="up (pid $pid)"
			else
				state="running, not ready (pid $pid)"
				rc=1
			fi
		else
			state=down
			rc=1
		fi
		printf '%-11s %-30s %s\n' "$name" "$state" "$(comp_ports "$name")"
	done
	return $rc
}

cmd_logs() {
	local names=("${COMPONENTS[@]}") name f
	if (($# > 0)); then
		comp_bin "$1" >/dev/null # rejects an unknown name
		names=("$1")
	fi
	if [[ ${FOLLOW:-0} == 1 ]]; then
		local files=()
		for name in "${names[@]}"; do
			files+=("$(log_file "$name")")
		done
		exec tail -n "${LOG_LINES:-50}" -F "${files[@]}"
	fi
	for name in "${names[@]}"; do
		f=$(log_file "$name")
		echo "==> $name: $f <=="
		if [[ -f $f ]]; then
			tail -n "${LOG_LINES:-50}" "$f"
		else
			echo "(no log yet)"
		fi
	done
}

cmd_validate() {
	build_collector
	build_jaeger
	fetch_prometheus
	log "collector config (local defaults)"
	"$COLLECTOR_BIN" validate --config="$COLLECTOR_CONFIG"
	log "collector config (docker-compose environment)"
	OTLP_HOST=0.0.0.0 JAEGER_OTLP_ENDPOINT=jaeger:4317 \
		"$COLLECTOR_BIN" validate --config="$COLLECTOR_CONFIG"
	log "Jaeger config"
	"$JAEGER_BIN" validate --config="$JAEGER_CONFIG"
	log "Prometheus configs"
	"$PROMTOOL_BIN" check config "$PROM_CONFIG" "$PROM_COMPOSE_CONFIG"
	log "all configs are valid"
}

main() {
	(($# > 0)) || {
		usage >&2
		exit 2
	}
	local cmd=$1
	shift
	case $cmd in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	logs) cmd_logs "$@" ;;
	validate) cmd_validate ;;
	build) build_all ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"

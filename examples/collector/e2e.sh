#!/usr/bin/env bash
# End-to-end check of the examples/collector stack, for CI and by hand:
# validates the configs, starts the stack (run.sh up: builds what is
# missing, cached under .bin), runs the e2e test against it, and always
# stops the stack (the test runs run.sh down and checks that no process is
# left; the trap makes sure it happens on failure too). Prints how long each
# step took. With chromium on PATH the test also loads Prometheus' pages in
# headless Chromium (AOF2_E2E_BROWSER=1: required; screenshots in
# .state/screenshots).
#
#   examples/collector/e2e.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

since() { # since T0: seconds since T0 (from date +%s%N), one decimal
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

step() { # step NAME CMD...: run CMD, print its duration
	local name="$1" t0 rc
	shift
	t0=$(date +%s%N)
	echo "== $name"
	set +e
	"$@"
	rc=$?
	set -e
	echo "== $name: $(since "$t0") (exit $rc)"
	return "$rc"
}

down() { step "run.sh down" "$here/run.sh" down || true; }
trap down EXIT

total0=$(date +%s%N)
step "run.sh validate" "$here/run.sh" validate
step "dashboard test" go -C "$here/dashboard" test -count=1 ./...
step "run.sh up" "$here/run.sh" up
step "e2e test" env AOF2_E2E=1 AOF2_E2E_STACK_UP=1 \
	go -C "$root" test -count=1 -v ./examples/collector/e2e/
echo "== total (the test ran run.sh down itself): $(since "$total0")"

#!/usr/bin/env bash
# Property-based test of the funeral partner API from its OpenAPI spec, with
# schemathesis from PyPI. It installs schemathesis into a venv under a cache
# directory, builds mzhub, starts a throwaway sandbox of the partner API
# (`mzhub conformance --serve-sandbox`, isolated SQLite store, a generated
# test partner, and a local proxy that signs every request with that
# partner's HMAC-SM3 key) and runs schemathesis against it. It fails on any
# 5xx or any answer that breaks docs/api/partner.yaml.
#
# Environment:
#   MZHUB_CACHE          cache directory (default ~/.cache/mzhub)
#   SCHEMATHESIS_VERSION version to install (default 4.32.5)
#   HYPOTHESIS_VERSION   hypothesis pinned beside it (default 6.170.17: with 6.135.0
#                        the stateful phase crashed on Python 3.11.7, deep-copying a
#                        thread lock in dataclasses.asdict; see docs/security.md)
#   ST_MAX_TIME          time budget in seconds of the first run (default 120)
#   ST_STATEFUL_TIME     time budget in seconds of the stateful run (default 90)
#   ST_EXTRA             further arguments for `st run`
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${MZHUB_CACHE:-$HOME/.cache/mzhub}
version=${SCHEMATHESIS_VERSION:-4.32.5}
hypothesis=${HYPOTHESIS_VERSION:-6.170.17}
venv=$cache/schemathesis-$version-hypothesis-$hypothesis
max_time=${ST_MAX_TIME:-120}
stateful_time=${ST_STATEFUL_TIME:-90}
work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$venv/bin/st" ]; then
	echo "installing schemathesis $version into $venv" >&2
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" "hypothesis==$hypothesis"
fi

(cd "$root" && go build -o "$work/mzhub" ./cmd/mzhub)

"$work/mzhub" conformance --serve-sandbox 127.0.0.1:0 --signing-proxy 127.0.0.1:0 \
	--sandbox-db "$work/sandbox.db" >"$work/addr" 2>"$work/sandbox.log" &
pid=$!
for _ in $(seq 1 100); do
	grep -q '^signing proxy:' "$work/addr" 2>/dev/null && break
	sleep 0.1
done
proxy=$(sed -n 's|^signing proxy: *\(http://[^/]*\)/.*|\1|p' "$work/addr")
if [ -z "$proxy" ]; then
	echo "sandbox did not start:" >&2
	cat "$work/sandbox.log" >&2
	exit 1
fi
echo "sandbox reachable through the signing proxy at $proxy" >&2

# First run: the spec's examples, boundary coverage of every schema and
# random fuzzing. Second run, with a budget of its own (in one run the
# earlier phases use up the time): stateful sequences that follow the spec's
# links (a push's answer read back, updated and withdrawn by its id and
# ETag; a listed record read by its id).
# Checks: no 5xx; status codes, content types, headers and bodies as the
# spec documents them; invalid data is refused; valid data is accepted.
# Run from the scratch directory: schemathesis keeps its state in ./.schemathesis.
cd "$work"
# The proxy signs requests that carry X-MZ-Signature (the spec's security
# scheme); requests where schemathesis drops it reach the hub unsigned.
# st exits non-zero on a failed check and also on an error inside the tool.
# One such error is known: CPython 3.11's "AST constructor recursion depth
# mismatch", raised inside hypothesis while it describes a lambda of
# schemathesis's coverage phase (seen in CI at hypothesis 6.170.17); it says
# nothing about the hub. A run whose only errors are that one passes, with
# a warning; any failed check, or any other error, fails.
set +e
"$venv/bin/st" run "$root/docs/api/partner.yaml" --url "$proxy" -H "X-MZ-Signature: sign-me" \
	--checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
	--phases examples,coverage,fuzzing --max-time "$max_time" --workers 2 --no-color ${ST_EXTRA:-} 2>&1 | tee "$work/st1.out"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
	runtime=$(grep -c '^Runtime Error$' "$work/st1.out" || true)
	known=$(grep -c '^AST constructor recursion depth mismatch' "$work/st1.out" || true)
	if grep -q '^Failures:' "$work/st1.out" || grep -q '=== FAILURES ===\|^ *Failures:' "$work/st1.out" || [ "$runtime" -eq 0 ] || [ "$runtime" -ne "$known" ]; then
		echo "schemathesis: failed (exit $rc)" >&2
		exit "$rc"
	fi
	echo "schemathesis: warning: $runtime runtime error(s) inside hypothesis (AST constructor recursion depth mismatch), no failed check: passing" >&2
fi
"$venv/bin/st" run "$root/docs/api/partner.yaml" --url "$proxy" -H "X-MZ-Signature: sign-me" \
	--checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
	--phases stateful --max-time "$stateful_time" --workers 2 --no-color ${ST_EXTRA:-}

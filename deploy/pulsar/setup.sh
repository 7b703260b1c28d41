#!/usr/bin/env bash
# Creates the mzhub tenant and its namespaces (one per business line) through
# the Pulsar admin REST API, with the policies the bus relies on: retention
# (a new subscription starts at the earliest retained message) and broker
# deduplication. Idempotent: existing tenant and namespaces are kept and
# their policies set again.
#
# Environment: MZHUB_PULSAR_ADMIN (default http://127.0.0.1:8080),
# MZHUB_PULSAR_TENANT (default mzhub), MZHUB_PULSAR_CLUSTER (default
# standalone), MZHUB_PULSAR_NAMESPACES (default below).
set -euo pipefail
admin=${MZHUB_PULSAR_ADMIN:-http://127.0.0.1:8080}
tenant=${MZHUB_PULSAR_TENANT:-mzhub}
cluster=${MZHUB_PULSAR_CLUSTER:-standalone}
# exchange: default; disbursement: allowance cycle and bank files;
# verification: household finance fan-out; funeral: funeral homes and
# cemeteries; cards: card center; portal: one-stop job library; datasea:
# big-data center; test: integration tests.
namespaces=${MZHUB_PULSAR_NAMESPACES:-exchange disbursement verification funeral cards portal datasea test}

call() { # method path [json]
	local code
	code=$(curl -sS -m 30 -o /tmp/mzhub-pulsar-setup.out -w '%{http_code}' -X "$1" \
		-H 'Content-Type: application/json' ${3:+--data "$3"} "$admin$2")
	case $code in
	2??) ;;
	409) ;; # exists already
	*)
		echo "pulsar setup: $1 $2: HTTP $code: $(cat /tmp/mzhub-pulsar-setup.out)" >&2
		return 1
		;;
	esac
}

call PUT "/admin/v2/tenants/$tenant" "{\"allowedClusters\":[\"$cluster\"],\"adminRoles\":[]}"
for ns in $namespaces; do
	call PUT "/admin/v2/namespaces/$tenant/$ns"
	call POST "/admin/v2/namespaces/$tenant/$ns/retention" '{"retentionTimeInMinutes":10080,"retentionSizeInMB":1024}'
	call POST "/admin/v2/namespaces/$tenant/$ns/deduplication" 'true'
done
echo "pulsar setup: tenant $tenant, namespaces: $namespaces" >&2

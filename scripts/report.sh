#!/usr/bin/env bash
# `make report`: writes the BI dashboard, a self-contained HTML page (hand-made SVG charts, no
# network), from the views of schema oms_bi of the demo cluster, and prints its path.
#   scripts/report.sh [FILE]   default $OMS_REPORT or /tmp/oms-report.html
# The data: the demo database (make demo; started here when it is not running, and `make demo`
# itself ends by calling this script). Tenant: $OMS_TENANT (default: the default tenant);
# reporting currency: $OMS_REPORTING_CURRENCY (default EUR). The page itself: scripts/report.sql.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

out=${1:-${OMS_REPORT:-/tmp/oms-report.html}}
host=/tmp/oms-demo
db=oms_demo

if [ ! -f "$host/port" ] || ! "$PGBIN/pg_isready" -q -h "$host" -p "$(cat "$host/port")"; then
	echo "oms report: the demo cluster is not running; starting it (make demo), which writes the report at its end"
	OMS_REPORT=$out exec scripts/demo.sh
fi
port=$(cat "$host/port")

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if ! PGOPTIONS="-c oms.tenant=${OMS_TENANT:-default} -c oms_bi.reporting_currency=${OMS_REPORTING_CURRENCY:-EUR}" \
	"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres -d "$db" \
	-f scripts/report.sql >"$tmp"; then
	echo "oms report: FAILED (see the error above)" >&2
	exit 1
fi
mv "$tmp" "$out"
chmod 644 "$out"
trap - EXIT
echo "oms report: dashboard written to $out"

#!/usr/bin/env bash
# Installs what oms needs on Debian 12 when it is missing: PostgreSQL 15, its server headers,
# pg_cron, the Perl modules of PostgreSQL's TAP tests, and sqlsmith (random queries, a TAP test).
# As root it runs apt-get; otherwise it prints the one command to run.
set -euo pipefail
. "$(dirname "$0")/common.sh"

missing=()
[ -x "$PGBIN/postgres" ] || missing+=(postgresql-15)
# pgxs.mk alone is not enough: postgresql-client-15 ships it without the server headers.
[ -f "$PGXSDIR/src/makefiles/pgxs.mk" ] && [ -f /usr/include/postgresql/15/server/postgres.h ] \
	|| missing+=(postgresql-server-dev-15)
[ -f /usr/share/postgresql/15/extension/pg_cron.control ] || missing+=(postgresql-15-cron)
perl -MIPC::Run -e1 2>/dev/null || missing+=(libipc-run-perl)
command -v sqlsmith >/dev/null || missing+=(sqlsmith)
command -v make >/dev/null && command -v gcc >/dev/null || missing+=(build-essential)

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "oms: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "oms: missing packages; run this once, then try again:" >&2
	echo "  sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

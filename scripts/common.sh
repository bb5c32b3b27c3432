# Shared settings for the cluster, test and demo scripts (sourced, not run).
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGXSDIR=${PGXSDIR:-/usr/lib/postgresql/15/lib/pgxs}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The server refuses to run as root: when we are root, run PostgreSQL's programs as an
# unprivileged user (postgres, created by the Debian package).
PG_USER=${OMS_PG_USER:-postgres}
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_USER" -- env PATH="$PGBIN:$PATH" "$@"
	else
		env PATH="$PGBIN:$PATH" "$@"
	fi
}

# A scratch directory the server user can write to.
pg_scratch() {
	local d
	d=$(mktemp -d "/tmp/oms-$1.XXXXXX")
	chmod 755 "$d"
	[ "$(id -u)" = 0 ] && chown "$PG_USER" "$d"
	echo "$d"
}

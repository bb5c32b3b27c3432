#!/usr/bin/env bash
# build-citus.sh: builds and installs Citus from a source tree against the installed PostgreSQL 15.
#
#   test/citus/build-citus.sh SOURCE_DIR
#
# SOURCE_DIR is a Citus source tree (13.0.5 is the version tested with oms), for example
#   git clone --branch v13.0.5 https://github.com/citusdata/citus SOURCE_DIR
# The Debian build dependencies are installed when missing (as root, or through sudo). Citus is
# configured --without-libcurl (its anonymous statistics collector, which needs network access),
# built at low priority on two jobs, and installed into PostgreSQL 15's directories.
# Where Citus publishes packages for the platform, installing those is simpler (README, "Scale-out
# on Citus"); this script is for systems without them, such as Debian 12 here.
set -euo pipefail

src=${1:?usage: $0 SOURCE_DIR}
src=$(cd "$src" && pwd)
pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
[ -x "$pg_config" ] || { echo "build-citus: $pg_config not found (make deps installs PostgreSQL 15)" >&2; exit 1; }
[ -f "$src/configure" ] || { echo "build-citus: $src is not a Citus source tree (no configure)" >&2; exit 1; }

# Build dependencies: the server headers, Kerberos (libpq's GSSAPI headers), lz4 and zstd for
# columnar compression, OpenSSL; autoconf-era tools come with build-essential.
need=()
for p in build-essential libkrb5-dev liblz4-dev libzstd-dev libssl-dev libselinux1-dev libxslt1-dev \
		 libreadline-dev zlib1g-dev libpam0g-dev postgresql-server-dev-15; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "build-citus: installing ${need[*]}"
	sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get install -y --no-install-recommends "${need[@]}"
fi

cd "$src"
if [ ! -f Makefile.global ] || ! grep -q -- "$pg_config" config.log 2>/dev/null; then
	./configure PG_CONFIG="$pg_config" --without-libcurl
fi
# No LLVM bitcode: it doubles the build time and only serves JIT, which oms does not use.
nice -n 19 make -j2 with_llvm=no
sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo make install with_llvm=no
echo "build-citus: installed $("$pg_config" --pkglibdir)/citus.so ($(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$("$pg_config" --sharedir)/extension/citus.control"))"

#!/bin/sh
# Fetch Redis 6.0 — Debian 11 (bullseye)'s redis-tools package, the one Ubuntu 22.04 also ships (6.0.16) —
# with the libraries it links that Debian 12 no longer has, and unpack them into a private root. Nothing is
# installed system-wide; apt runs with its own sources, lists and cache under DEST.
# Usage: tests/redis/get-redis6.sh DEST   → DEST/root/usr/bin/redis-server (run with LD_LIBRARY_PATH=DEST/lib)
set -eu
dest=${1:?usage: get-redis6.sh DEST}
if [ -x "$dest/root/usr/bin/redis-server" ] && [ -r "$dest/root/etc/redis/redis.conf" ]; then exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "get-redis6: apt-get not available" >&2; exit 3; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "get-redis6: $keyring missing (apt-get install debian-archive-keyring)" >&2; exit 3; }
mkdir -p "$dest/apt/lists/partial" "$dest/apt/cache/archives/partial" "$dest/debs" "$dest/root"
cat > "$dest/apt/sources.list" <<EOF
deb [signed-by=$keyring] http://deb.debian.org/debian bullseye main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bullseye-security main
EOF
set -- -o Dir::Etc::SourceList="$dest/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
  -o Dir::State::Lists="$dest/apt/lists" -o Dir::Cache="$dest/apt/cache" -o Dir::State::status=/dev/null \
  -o APT::Architecture=amd64 -o APT::Sandbox::User=root -qq
apt-get "$@" update >/dev/null
cd "$dest/debs"
# redis-tools holds the 6.0 server binary (redis-check-rdb) and redis-cli; redis-server its redis.conf and the
# redis-server symlink (the binary acts on its name)
apt-get "$@" download redis-tools redis-server libssl1.1 liblua5.1-0 lua-cjson lua-bitop liblzf1 libjemalloc2 >/dev/null
for f in ./*.deb; do dpkg-deb -x "$f" "$dest/root"; done
ln -sfn root/usr/lib/x86_64-linux-gnu "$dest/lib"
LD_LIBRARY_PATH="$dest/lib" "$dest/root/usr/bin/redis-server" --version | grep -q "v=6\.0\."

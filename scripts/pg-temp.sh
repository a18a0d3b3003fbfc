#!/usr/bin/env bash
# A throwaway PostgreSQL server from Debian's package, for the study checks: initdb and pg_ctl
# run as the non-root user `postgres` (as this user when not root), listening only on a unix
# socket in DIR/sock (no TCP port), trust authentication for that socket's local users.
# Usage: scripts/pg-temp.sh start DIR   prints the server's URL (database `postgres`)
#        scripts/pg-temp.sh stop DIR
set -euo pipefail
cmd=${1:?usage: pg-temp.sh start|stop DIR} dir=${2:?usage: pg-temp.sh start|stop DIR}
bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "error: no PostgreSQL server (apt-get install postgresql, as root)" >&2; exit 2; }
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
start)
  mkdir -p "$dir/sock"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$dir"; chmod 700 "$dir"; fi
  as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres > "$dir/initdb.log"
  # 64 bench workers hold two connections each.
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-k $dir/sock -c listen_addresses='' -c max_connections=300" start > /dev/null
  echo "postgres://postgres@localhost/postgres?host=$dir/sock"
  ;;
stop)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop > /dev/null
  ;;
*)
  echo "usage: pg-temp.sh start|stop DIR" >&2
  exit 2
  ;;
esac

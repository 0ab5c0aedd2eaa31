#!/bin/sh
# yuyue-backup: one pg_dump (custom format) of YUYUE_DATABASE_URL into YUYUE_BACKUP_DIR, checked
# readable, then dumps older than YUYUE_BACKUP_KEEP_DAYS days are removed. Installed as
# /usr/local/sbin/yuyue-backup and run nightly by yuyue-backup.timer; `make deploy-check` runs it
# and restores its dump. Restore procedure: docs/operations.md "Backups".
set -eu

url="${YUYUE_DATABASE_URL:?YUYUE_DATABASE_URL is not set}"
case "$url" in
  postgresql:* | postgresql+*:* | postgres:*) ;;
  *) echo "yuyue-backup: only a PostgreSQL database is dumped (YUYUE_DATABASE_URL)" >&2; exit 2 ;;
esac
url="postgresql:${url#*:}"   # libpq knows no +driver suffix
dir="${YUYUE_BACKUP_DIR:-/var/backups/yuyue}"
keep="${YUYUE_BACKUP_KEEP_DAYS:-14}"
case "$keep" in '' | *[!0-9]*) echo "yuyue-backup: YUYUE_BACKUP_KEEP_DAYS must be a number of days" >&2; exit 2 ;; esac

umask 077
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
final="$dir/yuyue-$stamp.dump"
partial="$dir/.yuyue-$stamp.dump.partial"
trap 'rm -f "$partial"' EXIT

pg_dump --format=custom --compress=6 --file="$partial" --dbname="$url"
pg_restore --list "$partial" >/dev/null   # a dump that cannot be read back is no backup
mv "$partial" "$final"
trap - EXIT
echo "yuyue-backup: $final ($(du -h "$final" | cut -f1))"

find "$dir" -maxdepth 1 -type f -name 'yuyue-*.dump' -mtime +"$keep" -print -delete \
  | sed 's/^/yuyue-backup: removed /'

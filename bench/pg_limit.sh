#!/usr/bin/env bash
# The ceiling: the booking transaction of `POST /api/v1/appointments` written directly in SQL and run
# by pgbench (prepared statements, no Python anywhere). No service on this machine can commit
# bookings faster than this.
#
#   bench/pg_limit.sh [DATABASE_URL]
#
# Without DATABASE_URL it makes a throwaway database (migrated with `yuyue db upgrade`), seeds a hall,
# a service and citizens, and drops it at the end. With one (bench/rush.py passes its own) it adds
# only its own slot rows (ids `pgb-N`) and counter row (hall `pgbench`) and uses the given rows.
#
# Settings (environment): CLIENTS (8), DURATION seconds (20), SLOTS (140), THREADS (2),
# and with a DATABASE_URL: SERVICE_ID, HALL_ID, HALL_PATH, CITIZEN_LO, CITIZEN_HI.
#
# The transaction, statement for statement as booking/repository.py runs it:
#   BEGIN; precheck SELECT (citizen, live count, live key taken); ban SELECT;
#   conditional UPDATE of the slot RETURNING; counter upsert RETURNING n; INSERT of the booking
#   (the partial unique index on live_key checks it); COMMIT.
set -euo pipefail

CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-20}
SLOTS=${SLOTS:-140}
THREADS=${THREADS:-2}
PG_ADMIN_URL=${YUYUE_BENCH_PG:-postgresql://postgres@127.0.0.1:5432/postgres}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-$HERE/../.venv/bin/python}
DAY=2026-12-15

own_db=""
if [[ $# -ge 1 ]]; then
  DB_URL=$1
else
  name="yuyue_pglimit_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$name\""
  DB_URL="${PG_ADMIN_URL%/*}/$name"
  own_db=$name
  trap 'psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$own_db\" WITH (FORCE)"' EXIT
  YUYUE_ENV=test YUYUE_DATABASE_URL=$DB_URL "$PYTHON" -m yuyue db upgrade >/dev/null
  psql -q -v ON_ERROR_STOP=1 "$DB_URL" <<'SQL'
INSERT INTO units (id, name, kind, parent_id, path, address, hotline, mode, hours, counters, code, created_at)
VALUES ('pgbench-hall', 'pgbench hall', 'city_hall', 'platform', 'platform/pgbench-hall/', 'x', '020', 'appointment_priority',
        '[{"start": "09:00", "end": "17:00"}]', 1, '99', now());
INSERT INTO departments (id, hall_id, name) VALUES (900000, 'pgbench-hall', 'pgbench');
INSERT INTO services (id, hall_id, department_id, name, business_types, daily_capacity, max_batch, walk_in_allowed,
                      bundle_of, active, created_at)
VALUES (900000, 'pgbench-hall', 900000, 'pgbench', '[]', 1000, 1, true, NULL, true, now());
INSERT INTO citizens (id, id_type, id_hash, id_enc, id_masked, name, phone_enc, phone_masked, birth_date, gender,
                      created_at, updated_at)
SELECT 900000 + g, 'resident_id', 'pgbench-' || g, 'x', '4401**********123X', '测试', 'x', '138****8000', NULL, NULL,
       now(), now()
FROM generate_series(1, 20000) AS g;
SQL
  SERVICE_ID=900000 HALL_ID=pgbench-hall HALL_PATH=platform/pgbench-hall/ CITIZEN_LO=900001 CITIZEN_HI=920000
fi
: "${SERVICE_ID:?}" "${HALL_ID:?}" "${HALL_PATH:?}" "${CITIZEN_LO:?}" "${CITIZEN_HI:?}"

# pgbench's own slots: plenty of seats, so every transaction commits a booking (the ceiling of
# committed bookings per second); the on-site share (10 %) is held back in the UPDATE as the app does.
psql -q -v ON_ERROR_STOP=1 "$DB_URL" <<SQL
INSERT INTO slots (id, service_id, day, start, "end", capacity, booked)
SELECT 'pgb-' || g, $SERVICE_ID, DATE '$DAY', TIMESTAMP '$DAY 09:00', TIMESTAMP '$DAY 10:00', 100000000, 0
FROM generate_series(1, $SLOTS) AS g
ON CONFLICT (id) DO NOTHING;
ANALYZE;
SQL

script=$(mktemp --suffix=.sql)
trap 'rm -f "$script"; if [[ -n "$own_db" ]]; then psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$own_db\" WITH (FORCE)"; fi' EXIT
cat >"$script" <<SQL
\set slot random(1, $SLOTS)
\set cit random($CITIZEN_LO, $CITIZEN_HI)
\set k random(1, 1000000000000000)
BEGIN;
SELECT c.id, c.name, c.id_masked, c.phone_masked,
       (SELECT count(*) FROM bookings b WHERE b.citizen_id = c.id AND b.status IN ('booked', 'checked_in')),
       (SELECT count(*) FROM bookings b WHERE b.live_key = 'pgb:' || :k AND b.status IN ('booked', 'checked_in'))
  FROM citizens c WHERE c.id = :cit;
SELECT max(bans.until) FROM bans JOIN units ON units.id = bans.unit_id
 WHERE bans.citizen_id = :cit AND bans.lifted_at IS NULL AND bans.until >= DATE '2026-12-01'
   AND substr('$HALL_PATH', 1, length(units.path)) = units.path;
UPDATE slots SET booked = booked + 1
 WHERE id = 'pgb-' || :slot AND booked + 1 <= capacity - (capacity * 10) / 100 RETURNING booked;
INSERT INTO booking_counters (hall_id, day, n) VALUES ('pgbench', DATE '$DAY', 1)
  ON CONFLICT (hall_id, day) DO UPDATE SET n = booking_counters.n + 1 RETURNING n \gset
INSERT INTO bookings (number, citizen_id, service_id, hall_id, slot_id, slot_day, slot_start, slot_end, quantity,
                      channel, business_types, company_uscc, company_name, status, live_key, rebook_of, rebooked,
                      reason, created_at, updated_at)
VALUES ('P' || lpad(:n::text, 15, '0'), :cit, $SERVICE_ID, '$HALL_ID', 'pgb-' || :slot, DATE '$DAY',
        TIMESTAMP '$DAY 09:00', TIMESTAMP '$DAY 10:00', 1, 'web', '[]', NULL, NULL, 'booked', 'pgb:' || :k,
        NULL, false, NULL, now(), now())
RETURNING id;
END;
SQL

echo "pgbench: $CLIENTS clients, $THREADS threads, ${DURATION}s, $SLOTS slots, prepared statements"
out=$(pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -f "$script" "$DB_URL" 2>&1) || {
  echo "$out"
  exit 1
}
echo "$out" | grep -E "^(number of (transactions|failed)|latency|tps)"
tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
# Leave the database as it was found: pgbench's rows only.
psql -q "$DB_URL" -c "DELETE FROM bookings WHERE slot_id LIKE 'pgb-%'; DELETE FROM slots WHERE id LIKE 'pgb-%';
                      DELETE FROM booking_counters WHERE hall_id = 'pgbench'"
echo "PG_LIMIT_TPS=$tps"

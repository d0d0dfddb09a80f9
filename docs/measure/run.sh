#!/usr/bin/env bash
# Reruns the pgbench measurements of docs/transactions.md §1.1 on a scratch database:
# creates DATABASE, applies migrations/*/up.sql, seeds it, runs every script with 1 client and
# with 8 clients, prints a summary, checks the data, and drops DATABASE.
#
# Usage: docs/measure/run.sh DATABASE        (DATABASE must not exist yet)
# Environment: PGHOST (default 127.0.0.1), PGUSER (default postgres), PGPORT;
#   DURATION   seconds per run (default 10);
#   RUN_LENGTH pgbench's run length instead, e.g. RUN_LENGTH='-t 5' for a quick check;
#   OUT        directory for the raw pgbench output (default: a new temporary directory);
#   KEEP_DB=1  keeps the database at the end.
set -euo pipefail

db=${1:?usage: $0 DATABASE}
if [[ ! $db =~ ^[a-z_][a-z0-9_]*$ ]]; then
  echo "database name must match ^[a-z_][a-z0-9_]*\$" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
length=${RUN_LENGTH:--T ${DURATION:-10}}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db"
if [[ ${KEEP_DB:-0} != 1 ]]; then
  trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db"' EXIT
fi
for f in "$root"/migrations/*/up.sql; do psql_db -f "$f"; done
psql_db -f "$here/seed.sql"
psql_db -c CHECKPOINT

# The summary of one run: tps, and the sum of the per-statement latencies (-r) of what the
# script measures: BEGIN..COMMIT if it has a transaction, else its last statement.
summarise() {
  awk -v script="$1" -v clients="$2" '
    /^tps = / { tps = $3 }
    /^statement latencies/ { on = 1; next }
    on && NF >= 2 {
      cmd = $0
      sub(/^ *[0-9.]+ +([0-9]+ +)?/, "", cmd)   # latency, then failures (PostgreSQL 15+)
      n++; lat[n] = $1; text[n] = cmd
      if (cmd ~ /^BEGIN/) b = n
      if (cmd ~ /^COMMIT/) c = n
    }
    END {
      printf "%-10s %d client(s) %8.0f tps  ", script, clients, tps
      if (!b) { printf "statement %.2f ms\n", lat[n]; exit }
      for (i = b; i <= c; i++) {
        txn += lat[i]
        if (text[i] ~ /lock_reservation/) from_lock = i
        if (!from_user && text[i] ~ /record_payment|refund: credit/) from_user = i
      }
      for (i = from_lock; i <= c; i++) lock_held += lat[i]
      for (i = from_user; i <= c; i++) user_held += lat[i]
      for (i = c + 1; i <= n; i++) after += lat[i]
      printf "BEGIN..COMMIT %.2f ms (reservation row locked %.2f, user row %.2f), after commit %.2f ms\n",
        txn, lock_held, user_held, after
    }' "$out/$1-c$2.txt"
}

# run CLIENTS SCRIPT [hot]: with "hot", every client acts as user 1 (pgbench's :users is 1),
# so all of them queue on one users row; the output is saved as SCRIPT_hot.
run() {
  local clients=$1 script=$2 users=1000 name=$2 jobs=$(($1 < 2 ? 1 : 2))
  if [[ ${3:-} == hot ]]; then users=1 name=${2}_hot; fi
  echo "== $name, $clients client(s)"
  # shellcheck disable=SC2086 # $length is two words on purpose
  pgbench -n -c "$clients" -j "$jobs" $length -r -D users="$users" -f "$here/$script.sql" "$db" \
    | tee "$out/$name-c$clients.txt"
  summarise "$name" "$clients" >> "$out/summary.txt"
}

: > "$out/summary.txt"
for s in signup charge hold pay cancel; do run 1 "$s"; done                   # uncontended
for s in signup charge hold pay cancel; do run 8 "$s"; done                   # loaded
for s in charge pay; do run 8 "$s" hot; done                                 # loaded, all clients user 1

# Every iteration got its seat and its hold, the books still balance, and every event has its
# two deliveries.
read -r reservations seats < <(psql_db -At -F ' ' -c \
  'SELECT count(*), (SELECT last_value FROM bench_seat) FROM reservations')
unbalanced=$(psql_db -At -c 'SELECT count(*) FROM users u
  WHERE balance <> (SELECT coalesce(sum(delta), 0) FROM point_ledger l WHERE l.user_id = u.id)')
read -r events deliveries < <(psql_db -At -F ' ' -c \
  'SELECT count(*), (SELECT count(*) FROM outbox_deliveries) FROM outbox')
echo "reservations $reservations, seats handed out $seats; users whose balance is not the sum of" \
  "their ledger: $unbalanced; outbox events $events, deliveries $deliveries" | tee "$out/checks.txt"
if ((reservations != seats || unbalanced != 0 || deliveries != 2 * events)); then
  echo "check failed" >&2
  exit 1
fi

echo
echo "PostgreSQL: $(psql -X -At -d "$db" -c 'SHOW server_version')   CPUs: $(nproc)   raw output: $out"
cat "$out/summary.txt"

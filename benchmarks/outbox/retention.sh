#!/usr/bin/env bash
# Measures the two ways to keep the outbox small, on EVENTS rows (default 10M):
#   delete  batched DELETEs in commit order, each batch starting where the previous ended: the statement OutboxRetention sends,
#           BATCH rows per transaction (a procedure commits after each batch, so each is its own short transaction);
#   drop    the outbox partitioned by day on created_at, old partitions dropped.
# For each: time to load the rows by COPY, time to remove them, the append latency of WRITERS concurrent pgbench
# clients (one event per transaction, like OutboxStore.AppendAsync) before and during the removal, and the table size
# after (and after VACUUM). Runs against the private server of ./run up:
#   ./run up && benchmarks/outbox/retention.sh [EVENTS] [BATCH]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/.polystore/servers.env"
EVENTS="${1:-10000000}"; BATCH="${2:-5000}"; WRITERS="${WRITERS:-4}"; BASELINE_S="${BASELINE_S:-15}"
export PGHOST=127.0.0.1 PGPORT="$PG_PORT" PGUSER=postgres PGDATABASE=polystore PGPASSWORD="$PG_PASSWORD"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
S=bench_retention

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
size() { "${PSQL[@]}" -tAc "SELECT pg_size_pretty(coalesce(sum(pg_total_relation_size(c.oid)), 0)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$S' AND c.relkind IN ('r', 'p') AND c.relname LIKE 'outbox%' AND c.relname <> 'outbox_checkpoints'"; }

# One append per transaction, the shape of OutboxStore.AppendAsync (the NOTIFY is left out: it is the same in both).
cat > "$WORK/append.sql" <<SQL
INSERT INTO $S.outbox (stream, aggregate_id, version, type, payload) VALUES ('user', 'u' || (random() * 100000)::int, 1, 'user.updated', '{"name":"bench","region":"eu"}');
SQL

# pgbench for $1 seconds; prints "p50 p99 max tps" in ms from its per-transaction log.
writers() {
  local secs="$1" tag="$2"
  (cd "$WORK" && pgbench -n -f append.sql -c "$WRITERS" -j "$WRITERS" -T "$secs" -l --log-prefix="$tag" >"$WORK/$tag.out" 2>&1) || { cat "$WORK/$tag.out" >&2; return 1; }
  cat "$WORK/$tag".* 2>/dev/null | awk '{ print $3 / 1000 }' | sort -n > "$WORK/$tag.lat"
  local n; n=$(wc -l < "$WORK/$tag.lat")
  awk -v n="$n" -v secs="$secs" 'NR == int(n * 0.5) + 1 { p50 = $1 } NR == int(n * 0.99) + 1 { p99 = $1 } { max = $1 } END { printf "p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d appends/s", p50, p99, max, n / secs }' "$WORK/$tag.lat"
}


# Loaded rows get transaction ids below the server's current one (as committed history has), spread evenly.
XID=$("${PSQL[@]}" -tAc "SELECT pg_current_xact_id()")
echo "outbox retention: $EVENTS events, delete batch $BATCH, $WRITERS writers (PostgreSQL $("${PSQL[@]}" -tAc 'SHOW server_version'))"

# ---------------------------------------------------------------- delete
"${PSQL[@]}" <<SQL
DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
CREATE TABLE $S.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream text NOT NULL, aggregate_id text NOT NULL, version bigint NOT NULL, type text NOT NULL, payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(), trace_parent text, trace_state text);
CREATE INDEX outbox_commit_order ON $S.outbox (tx_id, id);
CREATE TABLE $S.outbox_checkpoints (name text PRIMARY KEY, tx_id xid8 NOT NULL DEFAULT '0', event_id bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());
SQL
t0=$(now)
awk -v n="$EVENTS" -v x="$XID" 'BEGIN { for (i = 0; i < n; i++) printf "%d\tuser\tu%d\t1\tuser.updated\t{\"name\":\"bench user %d\",\"region\":\"eu\"}\t%s\n", 3 + int(i * (x - 10) / n), i % 100000, i, "2020-01-01 00:00:00+00" }' \
  | "${PSQL[@]}" -c "\\copy $S.outbox (tx_id, stream, aggregate_id, version, type, payload, created_at) FROM STDIN"
copy_delete=$(since "$t0")
# Every subscriber has passed every loaded event.
"${PSQL[@]}" -c "INSERT INTO $S.outbox_checkpoints (name, tx_id, event_id) SELECT 'sub', tx_id, id FROM $S.outbox ORDER BY tx_id DESC, id DESC LIMIT 1" -c "VACUUM ANALYZE $S.outbox"
size_full=$(size)
echo "delete: COPY of $EVENTS rows ${copy_delete} s; table + indexes $size_full"
echo "delete: writers alone:          $(writers "$BASELINE_S" base_delete)"

"${PSQL[@]}" <<SQL
CREATE PROCEDURE $S.prune(batch int) LANGUAGE plpgsql AS \$\$
DECLARE deleted int; seen int; after_tx xid8 := '0'; after_id bigint := 0; last_tx xid8; last_id bigint;
BEGIN
  LOOP
    WITH lowest AS (SELECT tx_id, event_id FROM $S.outbox_checkpoints ORDER BY tx_id, event_id LIMIT 1),
    head AS (
        SELECT o.id, o.tx_id, o.created_at FROM $S.outbox o, lowest l
        WHERE (o.tx_id, o.id) > (after_tx, after_id) AND (o.tx_id, o.id) <= (l.tx_id, l.event_id)
        ORDER BY o.tx_id, o.id
        LIMIT batch
        FOR UPDATE OF o SKIP LOCKED),
    gone AS (DELETE FROM $S.outbox o USING head h WHERE o.id = h.id AND h.created_at < now() - interval '1 day' RETURNING o.id)
    SELECT (SELECT count(*) FROM gone)::int, (SELECT count(*) FROM head)::int, last.tx_id, last.id
    INTO deleted, seen, last_tx, last_id
    FROM (SELECT NULL) one LEFT JOIN (SELECT tx_id, id FROM head ORDER BY tx_id DESC, id DESC LIMIT 1) last ON true;
    COMMIT;
    EXIT WHEN seen < batch OR deleted = 0 OR last_tx IS NULL;
    after_tx := last_tx; after_id := last_id;
  END LOOP;
END \$\$;
SQL
t0=$(now)
( "${PSQL[@]}" -c "CALL $S.prune($BATCH)"; since "$t0" > "$WORK/pruned" ) &
prune_pid=$!
during=$(writers 10 during_delete)
wait "$prune_pid"
delete_s=$(cat "$WORK/pruned")
left=$("${PSQL[@]}" -tAc "SELECT count(*) FROM $S.outbox WHERE created_at < now() - interval '1 day'")
echo "delete: removed $EVENTS rows in ${delete_s} s ($(awk -v n="$EVENTS" -v s="$delete_s" 'BEGIN { printf "%.0f", n / s }') rows/s); old rows left: $left"
echo "delete: writers while deleting (first 10 s): $during"
echo "delete: size right after: $(size); after VACUUM: $("${PSQL[@]}" -c "VACUUM $S.outbox" && size); after VACUUM FULL: $("${PSQL[@]}" -c "VACUUM FULL $S.outbox" && size)"

# ---------------------------------------------------------------- drop partitions
"${PSQL[@]}" <<SQL
DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
CREATE TABLE $S.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream text NOT NULL, aggregate_id text NOT NULL, version bigint NOT NULL, type text NOT NULL, payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(), trace_parent text, trace_state text,
    PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE INDEX outbox_commit_order ON $S.outbox (tx_id, id);
SELECT format('CREATE TABLE $S.outbox_d%s PARTITION OF $S.outbox FOR VALUES FROM (%L) TO (%L)', d, '2020-01-01'::date + d, '2020-01-01'::date + d + 1)
FROM generate_series(0, 9) d \gexec
CREATE TABLE $S.outbox_current PARTITION OF $S.outbox FOR VALUES FROM ('2020-01-11') TO (MAXVALUE);
SQL
t0=$(now)
awk -v n="$EVENTS" -v x="$XID" 'BEGIN { for (i = 0; i < n; i++) { d = int(i * 10 / n); printf "%d\tuser\tu%d\t1\tuser.updated\t{\"name\":\"bench user %d\",\"region\":\"eu\"}\t2020-01-%02d 12:00:00+00\n", 3 + int(i * (x - 10) / n), i % 100000, i, d + 1 } }' \
  | "${PSQL[@]}" -c "\\copy $S.outbox (tx_id, stream, aggregate_id, version, type, payload, created_at) FROM STDIN"
copy_drop=$(since "$t0")
"${PSQL[@]}" -c "VACUUM ANALYZE $S.outbox"
echo "drop: COPY of $EVENTS rows into 10 daily partitions ${copy_drop} s; table + indexes $(size)"
echo "drop: writers alone:          $(writers "$BASELINE_S" base_drop)"
t0=$(now)
( for d in 0 1 2 3 4 5 6 7 8 9; do "${PSQL[@]}" -c "DROP TABLE $S.outbox_d$d"; sleep 0.4; done; since "$t0" > "$WORK/dropped" ) &
drop_pid=$!
during=$(writers 10 during_drop)
wait "$drop_pid"
drop_s=$(cat "$WORK/dropped")
echo "drop: dropped 10 partitions ($EVENTS rows) in ${drop_s} s including 0.4 s pauses; writers while dropping: $during"
echo "drop: size after: $(size)"
"${PSQL[@]}" -c "DROP SCHEMA $S CASCADE"

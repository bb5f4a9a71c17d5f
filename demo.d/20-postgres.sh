# PostgreSQL toolkit: bulk upsert, keyset pages, rankings (sourced by ./run demo).
say "PostgreSQL: bulk-upsert 50,000 users (binary COPY to a temp table, then MERGE with an ON CONFLICT fallback, one transaction)"
polystore postgres seed --users 50000 --reset
say "PostgreSQL: the same users again -> every row is an update (updated_at = now())"
polystore postgres seed --users 50000
say "PostgreSQL: two keyset pages by score DESC, id ASC (the second follows the first page's signed cursor)"
polystore postgres page --size 5 --pages 2
say "PostgreSQL: rankings (RANK, PERCENT_RANK over active users), top 5"
polystore postgres rank --top 5

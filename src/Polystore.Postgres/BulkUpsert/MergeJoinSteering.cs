using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Sets, for one MERGE of a staged batch, how it joins the table, and puts the caller's settings back after it:
/// a batch of at least a quarter of the table whose hash fits under the memory cap gets the <c>work_mem</c> for
/// a one-pass hash join (never lowered); any other batch is joined by probing the conflict key's unique index
/// (hash and merge joins off), unless it is more than four times the table, which is left to the planner. All
/// three settings are transaction-local.
/// </summary>
/// <remarks>
/// Why: updating rows of a 1M-row table, the whole table in one batch took 13-14 s with a one-pass hash join,
/// 16-17 s with index probes and 18 s with the hash spilled into batches (which also visits pages in hash order);
/// a 125k-row batch took 2.2 s with probes, 2.7 s with a one-pass hash (hashing the whole table is a fixed cost),
/// 3.0 s spilled, and the planner chose the spilled hash, also for each parallel chunk.
/// Probes are never forced on a table much smaller than the batch: with hash and merge joins off, a 10M-row batch
/// into an empty table got a nested loop over a sequential scan of the table it was filling (quadratic; stopped
/// after minutes), where the planner hashes the small table. Left to the planner instead, the same 10M rows
/// against the 10M-row table they update got a spilled hash join that visited the heap in hash order (under
/// 1 MB/s of progress), where probes follow the batch's order.
/// </remarks>
internal static class MergeJoinSteering
{
    // The settings Steer may change, kept in transaction-local custom settings while the MERGE runs.
    private static readonly string[] JoinSettings = ["work_mem", "enable_hashjoin", "enable_mergejoin"];

    /// <summary>Copies the join settings aside (one row, three columns).</summary>
    public static readonly string Save = "SELECT " + string.Join(", ", JoinSettings.Select(n => $"pg_catalog.set_config('polystore.{n}', current_setting('{n}'), true)"));

    /// <summary>Puts the join settings back from the copies <see cref="Save"/> made (one row, three columns).</summary>
    public static readonly string Restore = "SELECT " + string.Join(", ", JoinSettings.Select(n => $"pg_catalog.set_config('{n}', current_setting('polystore.{n}'), true)"));

    /// <summary>
    /// The steering statement for one table ($1 = rows staged, $2 = hash memory cap in bytes, $3 = the conflict
    /// columns' names). A hash entry is about 64 bytes plus the key (67 MB for 1M e-mail keys), keys as wide as
    /// pg_stats says, 32 bytes each where it says nothing. The oid comes from the catalog, so it is inlined.
    /// </summary>
    public static string For(uint tableOid) =>
        "SELECT CASE WHEN x.rows * 4 >= x.reltuples AND x.need <= $2::float8 " +
        "THEN pg_catalog.set_config('work_mem', (GREATEST(pg_catalog.pg_size_bytes(current_setting('work_mem')), " +
        "ceil(x.need / current_setting('hash_mem_multiplier')::float8))::bigint / 1024) || 'kB', true) " +
        "WHEN x.reltuples * 4 >= x.rows " +
        "THEN pg_catalog.set_config('enable_hashjoin', 'off', true) || pg_catalog.set_config('enable_mergejoin', 'off', true) " +
        "ELSE current_setting('work_mem') END " +
        "FROM (SELECT $1::float8 AS rows, t.reltuples, GREATEST(t.reltuples, $1::float8) * (64 + COALESCE((SELECT sum(st.avg_width) " +
        "FROM pg_catalog.pg_stats st WHERE st.schemaname = t.nspname AND st.tablename = t.relname AND st.attname = ANY($3::text[])), " +
        "32 * cardinality($3::text[]))) AS need " +
        $"FROM (SELECT n.nspname, c.relname, {RowsNow} AS reltuples " +
        $"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = {tableOid}::oid) t) x";

    /// <summary>
    /// The table's rows now, as <see cref="For"/> estimates them, and how closely the rows are stored in the order of
    /// column $1 (pg_stats' correlation, null before an ANALYZE): one row, two float8 columns.
    /// </summary>
    public static string RowsNowOf(uint tableOid) =>
        $"SELECT {RowsNow}, (SELECT st.correlation::float8 FROM pg_catalog.pg_stats st WHERE st.schemaname = n.nspname AND st.tablename = c.relname " +
        "AND st.attname = $1::text) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " +
        $"WHERE c.oid = {tableOid}::oid";

    // The rows of pg_class row c now, estimated as the planner does: the density at the last VACUUM/ANALYZE times its
    // current size (a table filled since a TRUNCATE still says 0 rows in reltuples); 60 rows a page if never analyzed.
    private const string RowsNow = "pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::float8 " +
        "* CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN c.reltuples / c.relpages ELSE 60 END";

    /// <summary>The steering statement of <see cref="For"/> with its parameters (one row, one column).</summary>
    public static NpgsqlBatchCommand Steer(string steerSql, long rows, long memoryCap, string[] keyNames) => new(steerSql)
    {
        Parameters = { new() { Value = rows }, new() { Value = memoryCap }, new() { Value = keyNames } },
    };
}

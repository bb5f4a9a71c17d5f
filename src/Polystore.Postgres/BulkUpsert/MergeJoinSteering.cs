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
    /// The steering statement for one table ($1 = rows staged, $2 = hash memory cap in bytes, $3 = bytes per hash
    /// entry, from <see cref="EntryBytes"/>). It reads only pg_class: pg_stats, a view that costs a new session 3-5 ms
    /// to plan, was read before the COPY by <see cref="TableShapeOf"/>. The oid comes from the catalog, so it is inlined.
    /// </summary>
    public static string For(uint tableOid) =>
        "SELECT CASE WHEN x.rows * 4 >= x.reltuples AND x.need <= $2::float8 " +
        "THEN pg_catalog.set_config('work_mem', (GREATEST(pg_catalog.pg_size_bytes(current_setting('work_mem')), " +
        "ceil(x.need / current_setting('hash_mem_multiplier')::float8))::bigint / 1024) || 'kB', true) " +
        "WHEN x.reltuples * 4 >= x.rows " +
        "THEN pg_catalog.set_config('enable_hashjoin', 'off', true) || pg_catalog.set_config('enable_mergejoin', 'off', true) " +
        "ELSE current_setting('work_mem') END " +
        "FROM (SELECT $1::float8 AS rows, t.reltuples, GREATEST(t.reltuples, $1::float8) * $3::float8 AS need " +
        $"FROM (SELECT {RowsNow} AS reltuples FROM pg_catalog.pg_class c WHERE c.oid = {tableOid}::oid) t) x";

    /// <summary>
    /// The bytes of one hash entry: about 64 plus the key (67 MB for 1M e-mail keys), the key as wide as pg_stats
    /// says (<paramref name="keyWidth"/>), 32 bytes a column where it says nothing.
    /// </summary>
    public static double EntryBytes(double? keyWidth, int keyColumns) => 64 + (keyWidth ?? 32.0 * keyColumns);

    /// <summary>
    /// The table's rows now, as <see cref="For"/> estimates them, how closely the rows are stored in the order of
    /// column $1 (pg_stats' correlation), and the summed average width of the columns $2 (the conflict columns): one
    /// row of three float8 columns, the last two null before an ANALYZE. One read of pg_stats for both.
    /// </summary>
    public static string TableShapeOf(uint tableOid) =>
        $"SELECT {RowsNow}, s.correlation, s.width FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " +
        "CROSS JOIN LATERAL (SELECT (pg_catalog.max(st.correlation) FILTER (WHERE st.attname = $1::text))::float8 AS correlation, " +
        "pg_catalog.sum(st.avg_width)::float8 AS width FROM pg_catalog.pg_stats st " +
        "WHERE st.schemaname = n.nspname AND st.tablename = c.relname AND st.attname = ANY($2::text[])) s " +
        $"WHERE c.oid = {tableOid}::oid";

    // The rows of pg_class row c now, estimated as the planner does: the density at the last VACUUM/ANALYZE times its
    // current size (a table filled since a TRUNCATE still says 0 rows in reltuples); 60 rows a page if never analyzed.
    private const string RowsNow = "pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::float8 " +
        "* CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN c.reltuples / c.relpages ELSE 60 END";

    /// <summary>
    /// <see cref="TableShapeOf"/>'s statement with its parameters: <paramref name="keyNames"/> are the conflict columns'
    /// catalog names, the first of them the one whose correlation counts.
    /// </summary>
    public static NpgsqlBatchCommand ReadShape(string shapeSql, string[] keyNames) => new(shapeSql)
    {
        Parameters = { new() { Value = keyNames[0] }, new() { Value = keyNames } },
    };

    /// <summary>Reads the row of <see cref="TableShapeOf"/>'s statement where the reader stands.</summary>
    public static TableShape ReadShapeRow(NpgsqlDataReader reader) =>
        new(reader.IsDBNull(0) ? double.PositiveInfinity : reader.GetDouble(0), reader.IsDBNull(1) ? null : reader.GetDouble(1), reader.IsDBNull(2) ? null : reader.GetDouble(2));

    /// <summary>The steering statement of <see cref="For"/> with its parameters (one row, one column).</summary>
    public static NpgsqlBatchCommand Steer(string steerSql, long rows, long memoryCap, double entryBytes) => new(steerSql)
    {
        Parameters = { new() { Value = rows }, new() { Value = memoryCap }, new() { Value = entryBytes } },
    };
}

/// <summary>
/// A table as <see cref="MergeJoinSteering.TableShapeOf"/> read it: its rows now, its first conflict column's physical
/// correlation and its conflict columns' summed average width (both null before an ANALYZE).
/// </summary>
internal readonly record struct TableShape(double Rows, double? KeyCorrelation, double? KeyWidth)
{
    /// <summary>Nothing read: a table of unknown (infinite) size and no statistics.</summary>
    public static readonly TableShape Unknown = new(double.PositiveInfinity, null, null);
}

using LinqToDB;
using LinqToDB.Data;
using LinqToDB.DataProvider.PostgreSQL;
using LinqToDB.Mapping;
using Npgsql;
using NpgsqlTypes;

namespace Polystore.Bench;

/// <summary>A row of the upsert bench: the conflict key is <c>email</c>.</summary>
internal sealed record BenchUser(string Email, string Name, int Score, string Region);

/// <summary>
/// The techniques <c>bench postgres</c> sets beside Polystore's bulk upsert, each written the way a careful
/// engineer would by hand (or, for linq2db, the way its documentation shows), all on the same table and the same
/// conflict clause: <c>ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, updated_at = now()</c>.
/// </summary>
internal static class PostgresUpsertPeers
{
    public const string Schema = "polystore_bench";
    public const string Users = Schema + ".users";
    public const string Staging = Schema + ".staging";
    public const string Conflict = "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, updated_at = now()";

    /// <summary>The MERGE peer's work_mem: the same cap Polystore's default gives its own MERGE (PostgresBulkUpsertOptions.MergeHashMemoryBytes).</summary>
    public const string MergeWorkMem = "256MB";

    /// <summary>VALUES rows per statement swept by the bench; 16,383 rows x 4 columns is the most under the 65,535-parameter limit.</summary>
    public static readonly int[] ValuesBatches = [1_000, 4_000, 65_535 / 4];

    /// <summary>The UNLOGGED staging table of the staging peer, created once before any timed run.</summary>
    public const string CreateStaging = $"CREATE UNLOGGED TABLE {Staging} (email text, name text, score int, region text)";

    public static async Task UnnestAsync(NpgsqlConnection c, NpgsqlTransaction tx, IEnumerable<BenchUser> rows, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"INSERT INTO {Users} (email, name, score, region) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) {Conflict}", c, tx);
        foreach (var batch in rows.Chunk(10_000))
        {
            cmd.Parameters.Clear();
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. batch.Select(u => u.Email)] });
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. batch.Select(u => u.Name)] });
            cmd.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. batch.Select(u => u.Score)] });
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. batch.Select(u => u.Region)] });
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }

    public static async Task WriteCopyAsync(NpgsqlConnection c, string copy, IEnumerable<BenchUser> rows, CancellationToken ct)
    {
        await using var w = await c.BeginBinaryImportAsync(copy, ct);
        foreach (var u in rows)
        {
            await w.StartRowAsync(ct);
            await w.WriteAsync(u.Email, NpgsqlDbType.Text, ct);
            await w.WriteAsync(u.Name, NpgsqlDbType.Text, ct);
            await w.WriteAsync(u.Score, NpgsqlDbType.Integer, ct);
            await w.WriteAsync(u.Region, NpgsqlDbType.Text, ct);
        }
        await w.CompleteAsync(ct);
    }

    /// <summary>COPY into the pre-made UNLOGGED staging table (emptied untimed before the run), then INSERT … SELECT … ON CONFLICT.</summary>
    public static async Task StagingCopyAsync(NpgsqlConnection c, NpgsqlTransaction tx, IEnumerable<BenchUser> rows, CancellationToken ct)
    {
        await WriteCopyAsync(c, $"COPY {Staging} (email, name, score, region) FROM STDIN (FORMAT BINARY)", rows, ct);
        await using var apply = new NpgsqlCommand($"INSERT INTO {Users} (email, name, score, region) SELECT email, name, score, region FROM {Staging} {Conflict}", c, tx) { CommandTimeout = 0 };
        await apply.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// COPY into a temporary table (ON COMMIT DROP), then one MERGE, with work_mem raised for the transaction so the
    /// join's hash fits in memory (https://www.postgresql.org/docs/15/sql-merge.html, https://www.postgresql.org/docs/15/runtime-config-resource.html#GUC-WORK-MEM).
    /// </summary>
    public static async Task CopyMergeAsync(NpgsqlConnection c, NpgsqlTransaction tx, IEnumerable<BenchUser> rows, CancellationToken ct)
    {
        await using (var create = new NpgsqlCommand($"SET LOCAL work_mem = '{MergeWorkMem}'; CREATE TEMP TABLE merge_stage (email text, name text, score int, region text) ON COMMIT DROP", c, tx))
            await create.ExecuteNonQueryAsync(ct);
        await WriteCopyAsync(c, "COPY merge_stage (email, name, score, region) FROM STDIN (FORMAT BINARY)", rows, ct);
        await using var merge = new NpgsqlCommand($"""
            MERGE INTO {Users} t USING merge_stage s ON t.email = s.email
            WHEN MATCHED THEN UPDATE SET name = s.name, updated_at = now()
            WHEN NOT MATCHED THEN INSERT (email, name, score, region) VALUES (s.email, s.name, s.score, s.region)
            """, c, tx) { CommandTimeout = 0 };
        await merge.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Multi-row VALUES with positional parameters, <paramref name="batchSize"/> rows per statement.</summary>
    public static async Task ValuesAsync(NpgsqlConnection c, NpgsqlTransaction tx, IEnumerable<BenchUser> rows, int batchSize, CancellationToken ct)
    {
        foreach (var batch in rows.Chunk(batchSize))
        {
            var sql = new System.Text.StringBuilder($"INSERT INTO {Users} (email, name, score, region) VALUES ");
            await using var cmd = new NpgsqlCommand { Connection = c, Transaction = tx };
            for (var j = 0; j < batch.Length; j++)
            {
                var p = j * 4;
                sql.Append(j == 0 ? "" : ",").Append("($").Append(p + 1).Append(",$").Append(p + 2).Append(",$").Append(p + 3).Append(",$").Append(p + 4).Append(')');
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch[j].Email });
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch[j].Name });
                cmd.Parameters.Add(new NpgsqlParameter<int> { TypedValue = batch[j].Score });
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch[j].Region });
            }
            cmd.CommandText = sql.Append(' ').Append(Conflict).ToString();
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }

    public static async Task PerRowAsync(NpgsqlDataSource ds, NpgsqlConnection c, NpgsqlTransaction tx, IEnumerable<BenchUser> rows, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"INSERT INTO {Users} (email, name, score, region) VALUES ($1, $2, $3, $4) {Conflict}", c, tx);
        var email = new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text };
        var name = new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text };
        var score = new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer };
        var region = new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text };
        cmd.Parameters.Add(email); cmd.Parameters.Add(name); cmd.Parameters.Add(score); cmd.Parameters.Add(region);
        // statement_cache_size: 0 (Max Auto Prepare = 0) says the server connection may change under us (PgBouncer in
        // transaction mode): a statement prepared by name would stay behind on it and collide with the next client's.
        if (new NpgsqlConnectionStringBuilder(ds.ConnectionString).MaxAutoPrepare > 0) await cmd.PrepareAsync(ct);
        foreach (var u in rows)
        {
            (email.TypedValue, name.TypedValue, score.TypedValue, region.TypedValue) = (u.Email, u.Name, u.Score, u.Region);
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }

    public static Task CopyCeilingAsync(NpgsqlConnection c, IEnumerable<BenchUser> rows, CancellationToken ct) =>
        WriteCopyAsync(c, $"COPY {Users} (email, name, score, region) FROM STDIN (FORMAT BINARY)", rows, ct);

    /// <summary>Runs <paramref name="body"/> in one transaction on one connection of <paramref name="ds"/>.</summary>
    public static async Task InTransactionAsync(NpgsqlDataSource ds, IEnumerable<BenchUser> rows, Func<NpgsqlConnection, NpgsqlTransaction, IEnumerable<BenchUser>, CancellationToken, Task> body, CancellationToken ct)
    {
        await using var c = await ds.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await body(c, tx, rows, ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// A hand-written technique over <paramref name="connections"/> connections, the way Polystore's parallel mode
    /// cuts the work: chunks of <paramref name="chunk"/> rows taken in turn by each connection, one transaction per chunk.
    /// </summary>
    public static async Task ParallelAsync(NpgsqlDataSource ds, IReadOnlyList<BenchUser> rows, int connections, int chunk,
        Func<NpgsqlConnection, NpgsqlTransaction, IEnumerable<BenchUser>, CancellationToken, Task> body, CancellationToken ct)
    {
        var next = -1;
        var chunks = (rows.Count + chunk - 1) / chunk;
        await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Task.Run(async () =>
        {
            await using var c = await ds.OpenConnectionAsync(ct);
            int k;
            while ((k = Interlocked.Increment(ref next)) < chunks)
            {
                await using var tx = await c.BeginTransactionAsync(ct);
                await body(c, tx, Slice(rows, k * chunk, Math.Min(chunk, rows.Count - (k * chunk))), ct);
                await tx.CommitAsync(ct);
            }
        }, ct)));
    }

    private static IEnumerable<BenchUser> Slice(IReadOnlyList<BenchUser> rows, int start, int count)
    {
        for (var i = start; i < start + count; i++) yield return rows[i];
    }

    // ---- linq2db 6.5.1 ----

    /// <summary>The bench table as linq2db maps it (attribute mapping, https://linq2db.github.io/articles/general/Mapping.html).</summary>
    [Table(Schema = Schema, Name = "users")]
    public sealed class L2User
    {
        [Column("id"), PrimaryKey, Identity] public long Id { get; set; }
        [Column("email"), NotNull] public string Email { get; set; } = "";
        [Column("name"), NotNull] public string Name { get; set; } = "";
        [Column("score")] public int Score { get; set; }
        [Column("region"), NotNull] public string Region { get; set; } = "";
        [Column("updated_at")] public DateTime? UpdatedAt { get; set; }
    }

    /// <summary>The rows staged in linq2db's temporary table.</summary>
    public sealed class L2Stage
    {
        [Column("email")] public string Email { get; set; } = "";
        [Column("name")] public string Name { get; set; } = "";
        [Column("score")] public int Score { get; set; }
        [Column("region")] public string Region { get; set; } = "";
    }

    /// <summary>
    /// linq2db's recommended bulk upsert: its PostgreSQL provider's binary COPY (<c>BulkCopyType.ProviderSpecific</c>,
    /// https://linq2db.github.io/articles/sql/Bulk-Copy.html) into a temporary table
    /// (<c>CreateTempTableAsync</c>, https://linq2db.github.io/api/linq2db/LinqToDB.TempTable-1.html), then its Merge API
    /// (https://linq2db.github.io/articles/sql/merge/Merge-API-Description.html), in one transaction.
    /// </summary>
    public static async Task Linq2DbAsync(DataOptions options, IEnumerable<BenchUser> rows, CancellationToken ct)
    {
        await using var db = new DataConnection(options);
        await using var tx = await db.BeginTransactionAsync(ct);
        await using (var stage = await db.CreateTempTableAsync<L2Stage>("l2_stage", rows.Select(u => new L2Stage { Email = u.Email, Name = u.Name, Score = u.Score, Region = u.Region }),
            new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, tableOptions: TableOptions.IsTemporary, cancellationToken: ct))
        {
            await db.GetTable<L2User>()
                .Merge().Using(stage).On(t => t.Email, s => s.Email)
                .InsertWhenNotMatched(s => new L2User { Email = s.Email, Name = s.Name, Score = s.Score, Region = s.Region })
                .UpdateWhenMatched((t, s) => new L2User { Name = s.Name, UpdatedAt = Sql.CurrentTimestamp })
                .MergeAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    /// <summary>linq2db's options for the bench's server: the PostgreSQL 15 dialect, connections from the same pool as every other row.</summary>
    public static DataOptions Linq2DbOptions(NpgsqlDataSource ds) =>
        new DataOptions().UsePostgreSQL(PostgreSQLVersion.v15).UseConnectionFactory(_ => ds.CreateConnection());
}

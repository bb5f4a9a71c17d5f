using Npgsql;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>A throwaway server of this class's own, killed mid-load (immediate shutdown) and started again.</summary>
public sealed class CrashingServer : IAsyncLifetime
{
    public ThrowawayPostgres Server { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Server = await ThrowawayPostgres.StartAsync();

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// The server dies in the middle of a bulk upsert (<c>pg_ctl stop -m immediate</c>): the exception says how many
/// rows are committed, and after crash recovery the table holds exactly those.
/// </summary>
// Not run through PgBouncer: a throwaway server of its own, stopped mid-load; no pooler is in its path.
[Trait("Requires", "DirectPostgres")]
public sealed class BulkUpsertCrashTests(CrashingServer crashing) : IClassFixture<CrashingServer>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private ThrowawayPostgres Server => crashing.Server;

    public static TheoryData<string> Modes => ["atomic", "chunked", "chunked-copy", "parallel"];

    private static PostgresBulkUpsertOptions Options(string mode) => mode switch
    {
        "atomic" => new() { Mode = PostgresBulkUpsertMode.Atomic },
        "chunked" => new() { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 5_000 },
        "chunked-copy" => new() { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 5_000, UnnestThreshold = 0 },
        _ => new() { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = 2_000, Parallelism = 4 },
    };

    private static IEnumerable<UserRow> Users(int count) =>
        Enumerable.Range(0, count).Select(i => new UserRow($"u{i}@example.com", $"n{i}", i % 1000));

    private async Task<T> ScalarAsync<T>(string sql)
    {
        // A data source of its own each time: after a crash every pooled connection is dead.
        await using var source = NpgsqlDataSource.Create(PostgresDriverSettings.Build(Server.Settings).ConnectionString);
        await using var command = source.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync(Ct))!;
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_server_killed_mid_load_leaves_exactly_the_rows_the_exception_counts(string mode)
    {
        var table = $"users_{mode.Replace('-', '_')}";
        await ScalarAsync<int>($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL); SELECT 1");
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).OnConflict("email").Build();
        await using var sources = PostgresDataSources.Create(Server.Settings);
        var run = upsert.ExecuteAsync(sources.Primary, Users(2_000_000), Options(mode), Ct);

        // Killed once some chunks are committed (atomic: once its COPY is under way).
        var progress = mode == "atomic"
            ? "SELECT coalesce(sum(tuples_processed), 0)::bigint FROM pg_stat_progress_copy"
            : $"SELECT count(*) FROM {table}";
        await Poll.UntilAsync(async () => run.IsCompleted || await ScalarAsync<long>(progress) >= 10_000, TimeSpan.FromSeconds(60), "the load never got going");
        Assert.False(run.IsCompleted, "the load finished before the server was killed");
        await Server.CrashAsync();
        try
        {
            var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => run);
            Assert.IsAssignableFrom<NpgsqlException>(e.InnerException);
            await Server.StartServerAsync();
            var rows = await ScalarAsync<long>($"SELECT count(*) FROM {table}");
            // A COMMIT caught by the kill cannot be asked about (the server is down): its rows are in doubt, and the
            // table holds all of that transaction's rows or none. Parallel mode can have several COMMITs in doubt,
            // each a whole chunk (every chunk here is full), so any whole number of them may have committed.
            if (e.RowsInDoubt == 0) Assert.Equal(e.RowsCommitted, rows);
            else
            {
                var transactionRows = mode == "atomic" ? e.RowsInDoubt : Options(mode).ChunkSize;
                var extra = rows - e.RowsCommitted;
                Assert.True(extra >= 0 && extra <= e.RowsInDoubt && extra % transactionRows == 0,
                    $"{rows} rows, {e.RowsCommitted} committed, {e.RowsInDoubt} in doubt in transactions of {transactionRows} rows");
            }
            if (mode == "atomic") Assert.Equal(0, e.RowsCommitted);
            // The poll saw 10,000 rows committed; a COMMIT whose reply the kill cut off is counted in doubt, not committed.
            else Assert.True(e.RowsCommitted + e.RowsInDoubt >= 10_000, $"only {e.RowsCommitted} rows counted committed and {e.RowsInDoubt} in doubt");
        }
        finally
        {
            if (!await IsUpAsync()) await Server.StartServerAsync();
        }
    }

    private async Task<bool> IsUpAsync()
    {
        try { return await ScalarAsync<int>("SELECT 1") == 1; }
        catch (NpgsqlException) { return false; }
    }
}

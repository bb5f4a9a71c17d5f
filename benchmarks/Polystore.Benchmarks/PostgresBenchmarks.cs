using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Querying;

namespace Polystore.Benchmarks;

/// <summary>The private server of ./run up (POLYSTORE_CONFIG_DIR, or found from the current folder).</summary>
internal static class Servers
{
    public static PostgresDataSources Open() =>
        PostgresDataSources.Create(PolystoreConfig.Load(ConfigLocator.Locate(null).Directory).Postgres
            ?? throw new InvalidOperationException("no postgresql.yaml: run ./run up first"));

    public static async Task ExecAsync(NpgsqlDataSource ds, string sql)
    {
        await using var connection = await ds.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}

public sealed record BenchUser(string Email, string Name, int Score, string Region);

/// <summary>
/// Polystore's bulk upsert in its modes, insert path (empty table) and update path (same keys again).
/// The side-by-side comparison with unnest, staging COPY, VALUES and per-row statements is
/// <c>polystore bench postgres</c>; this is the micro view of Polystore alone.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, warmupCount: 1, iterationCount: 5)]
public class UpsertBenchmarks
{
    private PostgresDataSources _sources = null!;
    private PostgresBulkUpsertDefinition<BenchUser> _upsert = null!;
    private List<BenchUser> _rows = null!;

    [Params(10_000, 100_000)]
    public int Rows { get; set; }

    [Params(PostgresBulkUpsertMode.Atomic, PostgresBulkUpsertMode.Parallel)]
    public PostgresBulkUpsertMode Mode { get; set; }

    [GlobalSetup]
    public async Task SetUp()
    {
        _sources = Servers.Open();
        await Servers.ExecAsync(_sources.Primary, """
            CREATE SCHEMA IF NOT EXISTS bdn;
            DROP TABLE IF EXISTS bdn.users;
            CREATE TABLE bdn.users (id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, name text, score int, region text, updated_at timestamptz DEFAULT now())
            """);
        _upsert = PostgresBulkUpsert.Into<BenchUser>("bdn.users")
            .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region)
            .OnConflict("email").Update("name").Set("updated_at = now()").Build();
        _rows = Enumerable.Range(0, Rows).Select(i => new BenchUser($"user{i}@bench.local", $"User {i}", i % 1000, (i % 4).ToString(System.Globalization.CultureInfo.InvariantCulture))).ToList();
    }

    [IterationSetup(Target = nameof(InsertPath))]
    public void Empty() => Servers.ExecAsync(_sources.Primary, "TRUNCATE bdn.users").GetAwaiter().GetResult();

    [Benchmark]
    public Task<PostgresBulkUpsertResult> InsertPath() => _upsert.ExecuteAsync(_sources.Primary, _rows, new PostgresBulkUpsertOptions { Mode = Mode });

    [Benchmark]
    public Task<PostgresBulkUpsertResult> UpdatePath() => _upsert.ExecuteAsync(_sources.Primary, _rows, new PostgresBulkUpsertOptions { Mode = Mode });

    [GlobalCleanup]
    public async Task CleanUp()
    {
        await Servers.ExecAsync(_sources.Primary, "DROP SCHEMA IF EXISTS bdn CASCADE");
        await _sources.DisposeAsync();
    }
}

/// <summary>One page of 100 rows at the first page and at 90% depth: keyset (score DESC, id) against OFFSET.</summary>
[SimpleJob(RunStrategy.Throughput, warmupCount: 2, iterationCount: 10)]

public class PagingBenchmarks
{
    private const int TableRows = 200_000;
    private PostgresDataSources _sources = null!;
    private KeysetQueryDefinition _keyset = null!;
    private string _deepCursor = null!;

    [GlobalSetup]
    public async Task SetUp()
    {
        _sources = Servers.Open();
        await Servers.ExecAsync(_sources.Primary, $"""
            CREATE SCHEMA IF NOT EXISTS bdn_paging;
            DROP TABLE IF EXISTS bdn_paging.items;
            CREATE TABLE bdn_paging.items AS SELECT g AS id, (g * 7919) % 100000 AS score, 'item ' || g AS name FROM generate_series(1, {TableRows}) g;
            ALTER TABLE bdn_paging.items ADD PRIMARY KEY (id), ALTER COLUMN score SET NOT NULL;
            CREATE INDEX ON bdn_paging.items (score DESC, id);
            ANALYZE bdn_paging.items
            """);
        _keyset = KeysetQuery.From("bdn_paging.items").Select("id", "score", "name").OrderBy("score", SortDirection.Descending).ThenBy("id").MaxPageSize(100).Build();
        await using var connection = await _sources.OpenConnectionAsync();
        await using var deep = new NpgsqlCommand($"SELECT score, id FROM bdn_paging.items ORDER BY score DESC, id OFFSET {TableRows * 9 / 10} LIMIT 1", connection);
        await using var reader = await deep.ExecuteReaderAsync();
        await reader.ReadAsync();
        _deepCursor = _keyset.CreateCursor(true, reader.GetInt32(0), reader.GetInt32(1));
    }

    [Benchmark(Baseline = true)]
    public Task<KeysetPage<long>> KeysetFirstPage() => _keyset.PageAsync(_sources.Primary, null, 100, r => r.GetInt64(0));

    [Benchmark]
    public Task<KeysetPage<long>> KeysetDeepPage() => _keyset.PageAsync(_sources.Primary, _deepCursor, 100, r => r.GetInt64(0));

    [Benchmark]
    public async Task<int> OffsetDeepPage()
    {
        await using var connection = await _sources.OpenConnectionAsync();
        await using var command = new NpgsqlCommand($"SELECT id, score, name FROM bdn_paging.items ORDER BY score DESC, id OFFSET {TableRows * 9 / 10} LIMIT 100", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var n = 0;
        while (await reader.ReadAsync()) n++;
        return n;
    }

    [GlobalCleanup]
    public async Task CleanUp()
    {
        await Servers.ExecAsync(_sources.Primary, "DROP SCHEMA IF EXISTS bdn_paging CASCADE");
        await _sources.DisposeAsync();
    }
}

using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Npgsql;
using Polystore.Postgres;
using Polystore.Postgres.Querying;

namespace Polystore.Benchmarks;

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

using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Polystore.Postgres;
using Polystore.Postgres.BulkUpsert;

namespace Polystore.Benchmarks;

/// <summary>
/// Polystore's bulk upsert in its modes, insert path (empty table) and update path (same keys again).
/// The side-by-side comparison with unnest, staging COPY, VALUES and per-row statements is
/// <c>./run bench postgres</c>; this is the micro view of Polystore alone.
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

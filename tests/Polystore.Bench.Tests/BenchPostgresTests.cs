using System.Text.Json;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Bench.Tests;

/// <summary><c>polystore-bench postgres</c> on the private server (a fixed schema, so one class).</summary>
public sealed class BenchPostgresTests
{
    [Fact]
    public async Task Bench_postgres_runs_every_technique_on_all_rows_and_derives_each_ratio_from_its_figures()
    {
        var result = await BenchRunner.RunAsync("postgres", "--rows", "1000", "--paging-rows", "1000", "--repeat", "2", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;

        // Every technique upserted all --rows rows (after each run the command also counts them in the table, and fails otherwise).
        var upsert = root.GetProperty("upsert").EnumerateArray().ToDictionary(u => u.GetProperty("technique").GetString()!);
        Assert.Equal(["polystore", "polystore_parallel", "unnest", "staging_copy", "values", "per_row", "copy_ceiling"], upsert.Keys);
        Assert.All(upsert.Values, u => Assert.Equal(1000, u.GetProperty("rows").GetInt32()));
        Assert.All(upsert.Values, u => Assert.True(u.GetProperty("insert_rows_per_s").GetDouble() > 0));
        // Plain COPY has no update path, so no update figure.
        Assert.All(upsert, u => Assert.Equal(u.Key != "copy_ceiling", u.Value.TryGetProperty("update_rows_per_s", out var rate) && rate.GetDouble() > 0));
        double Insert(string technique) => upsert[technique].GetProperty("insert_rows_per_s").GetDouble();
        double Update(string technique) => upsert[technique].GetProperty("update_rows_per_s").GetDouble();

        // Pages at 0/10/50/90% depth on each of the two keys.
        var paging = root.GetProperty("paging").EnumerateArray()
            .Select(p => (Key: p.GetProperty("key").GetString()!, Depth: p.GetProperty("depth_percent").GetInt32(), Keyset: p.GetProperty("keyset_ms").GetDouble(), Offset: p.GetProperty("offset_ms").GetDouble()))
            .ToList();
        Assert.Equal(["id:0", "id:10", "id:50", "id:90", "score DESC, id:0", "score DESC, id:10", "score DESC, id:50", "score DESC, id:90"], paging.Select(p => $"{p.Key}:{p.Depth}"));
        double Deepest(Func<(string Key, int Depth, double Keyset, double Offset), double> ms) =>
            paging.GroupBy(p => p.Key).Select(g => ms(g.Single(p => p.Depth == 90)) / ms(g.Single(p => p.Depth == 0))).Max();

        var bestSingle = Math.Max(Insert("unnest"), Insert("staging_copy"));
        var bestSingleUpdate = Math.Max(Update("unnest"), Update("staging_copy"));
        var expected = new Dictionary<string, double>
        {
            ["upsert_vs_unnest"] = Insert("polystore") / Insert("unnest"),
            ["upsert_vs_staging_copy"] = Insert("polystore") / Insert("staging_copy"),
            ["upsert_vs_values"] = Insert("polystore") / Insert("values"),
            ["upsert_vs_per_row"] = Insert("polystore") / Insert("per_row"),
            ["upsert_vs_copy_ceiling"] = Insert("polystore") / Insert("copy_ceiling"),
            ["parallel_vs_best_single"] = Insert("polystore_parallel") / bestSingle,
            ["keyset_deep_vs_first"] = Deepest(p => p.Keyset),
            ["update_path_upsert_vs_unnest"] = Update("polystore") / Update("unnest"),
            ["update_path_upsert_vs_staging_copy"] = Update("polystore") / Update("staging_copy"),
            ["update_path_upsert_vs_values"] = Update("polystore") / Update("values"),
            ["update_path_upsert_vs_per_row"] = Update("polystore") / Update("per_row"),
            ["update_path_parallel_vs_best_single"] = Update("polystore_parallel") / bestSingleUpdate,
            ["parallel_vs_polystore_default"] = Insert("polystore_parallel") / Insert("polystore"),
            ["update_path_upsert_vs_best_of_unnest_and_staging_copy"] = Update("polystore") / bestSingleUpdate,
            ["offset_deep_vs_first"] = Deepest(p => p.Offset),
            ["upsert_vs_best_of_unnest_and_staging_copy"] = Insert("polystore") / bestSingle,
        };
        var entries = root.GetProperty("ratios").EnumerateObject().ToDictionary(r => r.Name, r => r.Value);
        var ratios = entries.ToDictionary(r => r.Key, r => r.Value.GetProperty("value").GetDouble());
        Assert.Equal(expected.Keys.Order(), ratios.Keys.Order());
        // The figures are printed rounded (rates to whole rows/s, page times to microseconds, ratios to 3 decimals): on a
        // loaded machine a slow technique's rate is small, and its rounding alone moves a ratio by up to 1/rate.
        var slowest = upsert.Values.SelectMany(u => new[] { "insert_rows_per_s", "update_rows_per_s" }.Select(p => u.TryGetProperty(p, out var r) ? r.GetDouble() : double.MaxValue)).Min();
        Assert.All(expected, e => Assert.True(Math.Abs(ratios[e.Key] - e.Value) <= 0.002 + (e.Value * (0.01 + (1 / slowest))), $"{e.Key}: printed {ratios[e.Key]}, its figures give {e.Value}"));

        foreach (var (name, entry) in entries)
        {
            if (!entry.TryGetProperty("target", out var target)) continue;
            var (goal, atMost, actual) = (target.GetDouble(), entry.TryGetProperty("at_most", out var most) && most.GetBoolean(), ratios[name]);
            // (met is judged on the unrounded ratio, so a ratio within rounding of its target could go either way)
            if (Math.Abs(actual - goal) > 0.0005) Assert.Equal(atMost ? actual <= goal : actual >= goal, entry.GetProperty("met").GetBoolean());
        }
        Assert.Equal(["keyset_deep_vs_first", "parallel_vs_best_single", "upsert_vs_best_of_unnest_and_staging_copy", "upsert_vs_per_row", "upsert_vs_values"],
            entries.Where(e => e.Value.TryGetProperty("target", out _)).Select(e => e.Key).Order());
        // Every technique ran once per round, so each upsert ratio has one ratio per round; paging ratios have none.
        Assert.All(entries.Where(e => e.Key.Contains("upsert", StringComparison.Ordinal) || e.Key.Contains("parallel", StringComparison.Ordinal)),
            e => Assert.Equal(2, e.Value.GetProperty("rounds").GetArrayLength()));
        Assert.False(entries["keyset_deep_vs_first"].TryGetProperty("rounds", out _));
        // The private server's role is a superuser, so every timed run started settled.
        Assert.True(root.GetProperty("checkpoint_before_each_run").GetBoolean());

        // The bench works in its own schema and drops it.
        await using var sources = PostgresDataSources.Create(TestServers.Postgres);
        await using var left = sources.Primary.CreateCommand("SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'polystore_bench'");
        Assert.Equal(0L, await left.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    public async Task Bench_postgres_rejects_a_parallelism_out_of_range_before_touching_the_server(string parallelism)
    {
        var result = await BenchRunner.RunAsync("postgres", "--parallelism", parallelism);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--parallelism must be between 1 and 64", result.Stderr, StringComparison.Ordinal);
    }
}

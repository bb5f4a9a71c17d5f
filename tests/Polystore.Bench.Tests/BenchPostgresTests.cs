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
        Assert.Equal(["polystore", "polystore_parallel", "linq2db", "unnest", "staging_copy", "copy_merge", "values_1000", "values_4000", "values_16383",
            "unnest_parallel", "copy_merge_parallel", "per_row", "copy_ceiling"], upsert.Keys);
        Assert.All(upsert.Values, u => Assert.Equal(1000, u.GetProperty("rows").GetInt32()));
        Assert.All(upsert.Values, u => Assert.True(u.GetProperty("insert_rows_per_s").GetDouble() > 0));
        Assert.All(upsert.Values, u => Assert.False(string.IsNullOrWhiteSpace(u.GetProperty("note").GetString())));
        // Plain COPY has no update path, so no update figure.
        Assert.All(upsert, u => Assert.Equal(u.Key != "copy_ceiling", u.Value.TryGetProperty("update_rows_per_s", out var rate) && rate.ValueKind == JsonValueKind.Number && rate.GetDouble() > 0));
        // Every round is printed, and every technique ran once per round, the order rotated by one each round.
        Assert.All(upsert.Values, u => Assert.Equal(2, u.GetProperty("insert_rounds").GetArrayLength()));
        var orders = root.GetProperty("round_orders").EnumerateArray().Select(o => o.EnumerateArray().Select(k => k.GetString()!).ToList()).ToList();
        Assert.Equal(upsert.Keys, orders[0]);
        Assert.Equal([.. upsert.Keys.Skip(1), upsert.Keys.First()], orders[1]);

        List<double> Rounds(string technique, bool update)
        {
            var source = root.GetProperty("upsert").EnumerateArray().Concat(root.GetProperty("derived").EnumerateArray()).Single(u => u.GetProperty("technique").GetString() == technique);
            return [.. source.GetProperty(update ? "update_rounds" : "insert_rounds").EnumerateArray().Select(r => r.GetDouble())];
        }
        // The derived rows are each round's best of their group.
        List<double> BestOf(bool update, params string[] keys) => [.. Enumerable.Range(0, 2).Select(i => keys.Max(k => Rounds(k, update)[i]))];
        string[] hand = ["unnest", "staging_copy", "copy_merge", "values_1000", "values_4000", "values_16383"];
        foreach (var update in new[] { false, true })
        {
            Assert.Equal(BestOf(update, hand), Rounds("best_hand_written", update));
            Assert.Equal(BestOf(update, "values_1000", "values_4000", "values_16383"), Rounds("values_best", update));
            Assert.Equal(BestOf(update, "unnest_parallel", "copy_merge_parallel"), Rounds("best_hand_written_parallel", update));
        }

        // Pages at 0/10/50/90% depth on each of the two keys.
        var paging = root.GetProperty("paging").EnumerateArray()
            .Select(p => (Key: p.GetProperty("key").GetString()!, Depth: p.GetProperty("depth_percent").GetInt32(), Keyset: p.GetProperty("keyset_ms").GetDouble(), Offset: p.GetProperty("offset_ms").GetDouble()))
            .ToList();
        Assert.Equal(["id:0", "id:10", "id:50", "id:90", "score DESC, id:0", "score DESC, id:10", "score DESC, id:50", "score DESC, id:90"], paging.Select(p => $"{p.Key}:{p.Depth}"));

        // Each upsert ratio is the ratio of its two sides' printed figures, and carries the ratio of every round.
        var entries = root.GetProperty("ratios").EnumerateObject().ToDictionary(r => r.Name, r => r.Value);
        (string Ours, string Theirs, bool Update) Sides(string name)
        {
            var update = name.StartsWith("update_path_", StringComparison.Ordinal);
            var rest = update ? name["update_path_".Length..] : name;
            var ours = rest.StartsWith("parallel_vs_", StringComparison.Ordinal) ? "polystore_parallel" : "polystore";
            var theirs = rest[(rest.IndexOf("_vs_", StringComparison.Ordinal) + 4)..];
            return (ours, theirs == "polystore_default" ? "polystore" : theirs, update);
        }
        var upsertRatios = entries.Keys.Where(k => k.Contains("upsert_vs_", StringComparison.Ordinal) || k.Contains("parallel_vs_", StringComparison.Ordinal)).ToList();
        Assert.Contains("upsert_vs_best_hand_written", upsertRatios);
        Assert.Contains("update_path_upsert_vs_linq2db", upsertRatios);
        Assert.Contains("parallel_vs_best_hand_written_parallel", upsertRatios);
        foreach (var name in upsertRatios)
        {
            var (ours, theirs, update) = Sides(name);
            var (a, b) = (Rounds(ours, update), Rounds(theirs, update));
            var rounds = entries[name].GetProperty("rounds").EnumerateArray().Select(r => r.GetDouble()).ToList();
            Assert.Equal(2, rounds.Count);
            for (var i = 0; i < 2; i++) Assert.True(Math.Abs(rounds[i] - (a[i] / b[i])) <= 0.002 + (a[i] / b[i] * 0.01), $"{name} round {i}: printed {rounds[i]}, its figures give {a[i] / b[i]}");
            double Median(List<double> v) => (v[0] + v[1]) / 2;
            var expected = Median(a) / Median(b);
            var value = entries[name].GetProperty("value").GetDouble();
            Assert.True(Math.Abs(value - expected) <= 0.002 + (expected * 0.01), $"{name}: printed {value}, its figures give {expected}");
        }
        foreach (var (name, entry) in entries)
        {
            if (!entry.TryGetProperty("target", out var target)) continue;
            var (goal, atMost, actual) = (target.GetDouble(), entry.TryGetProperty("at_most", out var most) && most.GetBoolean(), entry.GetProperty("value").GetDouble());
            // (met is judged on the unrounded ratio, so a ratio within rounding of its target could go either way)
            if (Math.Abs(actual - goal) > 0.0005) Assert.Equal(atMost ? actual <= goal : actual >= goal, entry.GetProperty("met").GetBoolean());
        }
        Assert.Equal(["keyset_deep_vs_first", "parallel_vs_best_hand_written_parallel", "update_path_parallel_vs_best_hand_written_parallel", "update_path_upsert_vs_best_hand_written",
            "update_path_upsert_vs_linq2db", "upsert_vs_best_hand_written", "upsert_vs_linq2db", "upsert_vs_per_row"],
            entries.Where(e => e.Value.TryGetProperty("target", out _)).Select(e => e.Key).Order(StringComparer.Ordinal));
        Assert.False(entries["keyset_deep_vs_first"].TryGetProperty("rounds", out _));
        // The private server's role is a superuser, so every timed run started settled.
        Assert.True(root.GetProperty("checkpoint_before_each_run").GetBoolean());

        // The bench works in its own schema and drops it.
        await using var sources = PostgresDataSources.Create(TestServers.Postgres);
        await using var left = sources.Primary.CreateCommand("SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'polystore_bench'");
        Assert.Equal(0L, await left.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Bench_postgres_scale_streams_each_size_and_records_the_peak_memory_of_each_run()
    {
        var result = await BenchRunner.RunAsync("postgres", "--scale", "--scale-rows", "2000,5000", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var rows = json.RootElement.GetProperty("scale").EnumerateArray()
            .Select(r => (Technique: r.GetProperty("technique").GetString(), Rows: r.GetProperty("rows").GetInt64(), Path: r.GetProperty("path").GetString(),
                Rate: r.GetProperty("rows_per_s").GetDouble(), Peak: r.GetProperty("peak_rss_mb").GetInt64()))
            .ToList();
        Assert.Equal(["polystore 2000 insert", "polystore 2000 update", "copy_merge 2000 insert", "copy_merge 2000 update",
            "polystore 5000 insert", "polystore 5000 update", "copy_merge 5000 insert", "copy_merge 5000 update"], rows.Select(r => $"{r.Technique} {r.Rows} {r.Path}"));
        Assert.All(rows, r => Assert.True(r.Rate > 0 && r.Peak > 0));
    }

    [Fact]
    public async Task Bench_postgres_rejects_an_unknown_technique_in_only()
    {
        var result = await BenchRunner.RunAsync("postgres", "--rows", "1000", "--paging-rows", "1000", "--only", "polystore,nosuch");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--only: no technique 'nosuch'", result.Stderr, StringComparison.Ordinal);
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

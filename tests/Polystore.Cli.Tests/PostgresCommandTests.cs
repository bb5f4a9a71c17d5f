using System.Text.Json;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

/// <summary><c>polystore postgres ...</c> and <c>polystore bench postgres</c> on the private server (fixed schemas, so one class).</summary>
public sealed class PostgresCommandTests
{
    private static readonly Dictionary<string, string?> Env = new() { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory };

    [Fact]
    public async Task Seed_page_and_rank_the_demo_users()
    {
        var first = await CliRunner.RunAsync(Env, "postgres", "seed", "--users", "1000", "--reset", "--json");
        Assert.True(first.ExitCode == 0, first.Stderr);
        using (var j = JsonDocument.Parse(first.Stdout))
            Assert.Equal((1000, 0), (j.RootElement.GetProperty("inserted").GetInt32(), j.RootElement.GetProperty("updated").GetInt32()));
        var second = await CliRunner.RunAsync(Env, "postgres", "seed", "--users", "1000", "--json");
        using (var j = JsonDocument.Parse(second.Stdout))
            Assert.Equal((0, 1000), (j.RootElement.GetProperty("inserted").GetInt32(), j.RootElement.GetProperty("updated").GetInt32()));

        var pages = await CliRunner.RunAsync(Env, "postgres", "page", "--size", "3", "--pages", "2", "--json");
        Assert.True(pages.ExitCode == 0, pages.Stderr);
        using var p = JsonDocument.Parse(pages.Stdout);
        var ids = p.RootElement.EnumerateArray().SelectMany(e => e.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetInt64())).ToList();
        Assert.Equal(6, ids.Distinct().Count());

        // A cursor printed by one process works in the next (stable key), and continues after page 1.
        var cursor = p.RootElement[0].GetProperty("next_cursor").GetString()!;
        var resumed = await CliRunner.RunAsync(Env, "postgres", "page", "--size", "3", "--pages", "1", "--cursor", cursor, "--json");
        using (var r = JsonDocument.Parse(resumed.Stdout))
            Assert.Equal(ids.Skip(3), r.RootElement[0].GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetInt64()));

        var forged = await CliRunner.RunAsync(Env, "postgres", "page", "--cursor", cursor[..^3] + "xyz");
        Assert.Equal(1, forged.ExitCode);
        Assert.Contains("signature does not match", forged.Stderr, StringComparison.Ordinal);

        var rank = await CliRunner.RunAsync(Env, "postgres", "rank", "--top", "3", "--json");
        using var k = JsonDocument.Parse(rank.Stdout);
        Assert.Equal([1L, 2L, 3L], k.RootElement.EnumerateArray().Select(e => e.GetProperty("rank").GetInt64()).Take(3));
    }

    [Fact]
    public async Task Bench_postgres_json_has_every_required_ratio()
    {
        var result = await CliRunner.RunAsync(Env, "bench", "postgres", "--rows", "1000", "--paging-rows", "1000", "--repeat", "1", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var ratios = json.RootElement.GetProperty("ratios");
        foreach (var name in new[] { "upsert_vs_unnest", "upsert_vs_staging_copy", "upsert_vs_values", "upsert_vs_per_row", "upsert_vs_copy_ceiling", "parallel_vs_best_single", "keyset_deep_vs_first" })
            Assert.True(ratios.GetProperty(name).GetDouble() > 0, name);
        Assert.Equal(7, json.RootElement.GetProperty("upsert").GetArrayLength());
        Assert.Equal(8, json.RootElement.GetProperty("paging").GetArrayLength());
        // The private server's role is a superuser, so every timed run started settled.
        Assert.True(json.RootElement.GetProperty("checkpoint_before_each_run").GetBoolean());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    public async Task Bench_postgres_rejects_a_parallelism_out_of_range_before_touching_the_server(string parallelism)
    {
        var result = await CliRunner.RunAsync(Env, "bench", "postgres", "--parallelism", parallelism);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--parallelism must be between 1 and 64", result.Stderr, StringComparison.Ordinal);
    }
}

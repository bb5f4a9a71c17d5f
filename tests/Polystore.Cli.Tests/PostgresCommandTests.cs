using System.Text.Json;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

/// <summary><c>polystore postgres ...</c> on the private server (fixed schemas, so one class).</summary>
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
        Assert.Equal(2, forged.ExitCode); // a usage error: the cursor is not one this command gave out
        Assert.Contains("signature does not match", forged.Stderr, StringComparison.Ordinal);

        var rank = await CliRunner.RunAsync(Env, "postgres", "rank", "--top", "3", "--json");
        using var k = JsonDocument.Parse(rank.Stdout);
        Assert.Equal([1L, 2L, 3L], k.RootElement.EnumerateArray().Select(e => e.GetProperty("rank").GetInt64()).Take(3));
    }
}

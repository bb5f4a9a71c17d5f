using System.Text.Json;

namespace Polystore.Bench.Tests;

/// <summary><c>polystore-bench integration</c> on the private PostgreSQL (each run in schemas of its own).</summary>
public sealed class BenchIntegrationTests
{
    [Fact]
    public async Task Bench_integration_kills_both_publishers_and_the_outbox_loses_no_event()
    {
        var result = await BenchRunner.RunAsync("integration", "--seconds", "1", "--rounds", "1", "--writers", "4", "--kill-seconds", "2", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var doc = JsonDocument.Parse(result.Stdout);
        var root = doc.RootElement;

        // Both kill tests started and killed their child processes (this executable's hidden outbox and naive-worker
        // commands); the outbox test's commands come from the bench itself, so it always has users to lose.
        foreach (var flow in new[] { "outbox", "naive" })
            Assert.True(root.GetProperty("kill_test").GetProperty(flow).GetProperty("sigkills").GetInt32() >= 1, $"{flow}: no SIGKILL");
        Assert.True(root.GetProperty("kill_test").GetProperty("outbox").GetProperty("users_written").GetInt32() > 0);
        Assert.Equal(0, root.GetProperty("lost_events").GetProperty("outbox").GetInt64());

        var ratio = root.GetProperty("ratios").GetProperty("throughput_vs_naive");
        var expected = root.GetProperty("outbox").GetProperty("commands_per_second").GetDouble() / root.GetProperty("naive").GetProperty("commands_per_second").GetDouble();
        Assert.True(Math.Abs(ratio.GetProperty("value").GetDouble() - expected) <= 0.001 + (expected * 1e-6));
        Assert.Equal(0.7, ratio.GetProperty("target").GetDouble());
        Assert.Single(ratio.GetProperty("rounds").EnumerateArray());
    }
}

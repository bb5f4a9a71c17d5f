using System.Text.Json;

namespace Polystore.Bench.Tests;

/// <summary><c>polystore-bench integration</c> on the private PostgreSQL (each run in schemas of its own).</summary>
public sealed class BenchIntegrationTests
{
    [Fact]
    public async Task Bench_integration_kills_every_publisher_and_the_atomic_flows_lose_no_event()
    {
        var result = await BenchRunner.RunAsync("integration", "--seconds", "1", "--rounds", "1", "--writers", "4", "--kill-seconds", "2", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var doc = JsonDocument.Parse(result.Stdout);
        var root = doc.RootElement;

        // Every kill test started and killed its child processes (this executable's hidden outbox and naive-worker
        // commands); the outbox test's commands come from the bench itself, so it always has users to lose.
        foreach (var flow in new[] { "outbox", "one_transaction", "naive" })
        {
            var kill = root.GetProperty("kill_test").GetProperty(flow);
            var (kills, lost, commands) = (kill.GetProperty("sigkills").GetInt32(), kill.GetProperty("lost").GetInt64(), kill.GetProperty("commands_committed").GetInt64());
            Assert.True(kills >= 1, $"{flow}: no SIGKILL");
            Assert.Equal(Math.Round((double)lost / kills, 2), kill.GetProperty("lost_per_kill").GetDouble());
            Assert.Equal(commands == 0 ? 0 : Math.Round(lost * 10_000.0 / commands, 2), kill.GetProperty("lost_per_10k_commands").GetDouble());
            Assert.True(commands >= kill.GetProperty("users_written").GetInt32());
        }
        Assert.True(root.GetProperty("kill_test").GetProperty("outbox").GetProperty("users_written").GetInt32() > 0);
        // Atomic flows lose nothing: the outbox's event commits with the row, and so does the one-transaction read model.
        Assert.Equal(0, root.GetProperty("lost_events").GetProperty("outbox").GetInt64());
        Assert.Equal(0, root.GetProperty("lost_events").GetProperty("one_transaction").GetInt64());

        var flows = root.GetProperty("flows");
        double Rate(string flow, string figure = "commands_per_second") => flows.GetProperty(flow).GetProperty(figure).GetDouble();
        // The outbox's figure counts until everything is projected, so it never exceeds its accepted rate.
        Assert.True(Rate("outbox") <= Rate("outbox", "accepted_per_second") + 1e-9);
        var ratios = root.GetProperty("ratios");
        foreach (var (name, ours, theirs) in new[] { ("throughput_vs_naive", "outbox", "naive"), ("throughput_vs_one_transaction", "outbox", "one_transaction"), ("one_transaction_vs_naive", "one_transaction", "naive") })
        {
            var ratio = ratios.GetProperty(name);
            var expected = Rate(ours) / Rate(theirs);
            Assert.True(Math.Abs(ratio.GetProperty("value").GetDouble() - expected) <= 0.001 + (expected * 1e-6), name);
            Assert.Single(ratio.GetProperty("rounds").EnumerateArray());
        }
        Assert.Equal(0.7, ratios.GetProperty("throughput_vs_naive").GetProperty("target").GetDouble());
        Assert.Equal(["outbox", "one_transaction", "naive"], root.GetProperty("round_orders")[0].EnumerateArray().Select(f => f.GetString()));
    }
}

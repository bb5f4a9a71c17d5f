using System.Diagnostics;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// redis.servers on a cluster of this test's own (three primaries, no replicas), so a primary can be killed without
/// touching the shared cluster other tests use.
/// </summary>
public sealed class DoctorClusterTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const string Password = "doctor-cluster-pw";

    [Fact]
    public async Task A_dead_cluster_primary_and_its_unserved_slots_are_critical()
    {
        var nodes = Enumerable.Range(0, 3).Select(_ => new ThrowawayRedis(Password, 2, "--cluster-enabled", "yes", "--cluster-node-timeout", "1000")).ToList();
        try
        {
            foreach (var node in nodes) await node.StartAsync(Ct);
            await CreateClusterAsync(nodes);
            var settings = new RedisSettings
            {
                Connection = new() { Url = $"redis://127.0.0.1:{nodes[0].Port}", Password = Password },
                Pool = new() { ConnectionTimeout = 2, SocketTimeout = 2 },
                Cluster = new() { Enabled = true, Nodes = [.. nodes.Select(n => $"redis://127.0.0.1:{n.Port}")] },
            };

            await using (var healthy = new RedisDiagnostics(settings))
            {
                var ok = Assert.Single(await RunAsync(healthy));
                Assert.Equal(Severity.Info, ok.Severity);
                Assert.Equal("All 3 Redis servers answer (3 primaries, 0 replicas)", ok.Title);
            }

            await nodes[2].KillAsync();
            await WaitForStateAsync(nodes[0], "fail");

            await using var doctor = new RedisDiagnostics(settings);
            var findings = await RunAsync(doctor);
            var state = Assert.Single(findings, f => f.Title.StartsWith("Cluster state is fail", StringComparison.Ordinal));
            Assert.Equal(Severity.Critical, state.Severity);
            Assert.Equal("5461", state.Evidence["cluster_slots_fail"]);
            Assert.Contains($"--cluster check 127.0.0.1:{nodes[0].Port}", state.Remedy, StringComparison.Ordinal);

            var dead = Assert.Single(findings, f => f.Evidence.GetValueOrDefault("node") == $"127.0.0.1:{nodes[2].Port}");
            Assert.Equal(Severity.Critical, dead.Severity);
            Assert.Equal("10923-16383", dead.Evidence["slots"]);
            Assert.Contains("it has no live replica to promote", dead.Remedy, StringComparison.Ordinal);
            Assert.All(findings, f => Assert.DoesNotContain(Password, f.Remedy ?? "", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_standalone_server_that_answers_is_one_info_line()
    {
        await using var doctor = new RedisDiagnostics(TestServers.Redis);
        var ok = Assert.Single(await RunAsync(doctor));
        Assert.Equal((Severity.Info, "The Redis server answers"), (ok.Severity, ok.Title));
    }

    private static async Task<IReadOnlyList<Finding>> RunAsync(RedisDiagnostics doctor) =>
        await doctor.Checks.Single(c => c.Name == "redis.servers").Run(Ct);

    private static async Task CreateClusterAsync(IReadOnlyList<ThrowawayRedis> nodes)
    {
        var info = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment["REDISCLI_AUTH"] = Password;
        foreach (var arg in new[] { "--cluster", "create" }.Concat(nodes.Select(n => $"127.0.0.1:{n.Port}")).Append("--cluster-yes"))
            info.ArgumentList.Add(arg);
        using var create = Process.Start(info)!;
        var output = create.StandardOutput.ReadToEndAsync(Ct);
        var errors = create.StandardError.ReadToEndAsync(Ct);
        await create.WaitForExitAsync(Ct);
        Assert.True(create.ExitCode == 0, await output + await errors);
        foreach (var node in nodes) await WaitForStateAsync(node, "ok");
    }

    private static async Task WaitForStateAsync(ThrowawayRedis node, string state)
    {
        await using var admin = await node.ConnectAsync();
        var server = admin.GetServers()[0];
        for (var i = 0; i < 600; i++) // up to 60 s on a loaded machine; node timeout is 1 s
        {
            var text = (string?)await server.ExecuteAsync("CLUSTER", "INFO") ?? "";
            if (text.Contains($"cluster_state:{state}", StringComparison.Ordinal)) return;
            await Task.Delay(100, Ct);
        }
        Assert.Fail($"cluster at {node.Port} never reached state {state}");
    }
}

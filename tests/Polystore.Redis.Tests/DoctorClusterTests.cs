using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using Polystore.Testing;

namespace Polystore.Redis.Tests;

/// <summary>
/// The doctor on a cluster of this test's own (<see cref="PrivateCluster"/>), so a node can be killed without touching
/// the shared cluster other tests use.
/// </summary>
public sealed class DoctorClusterTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const string Password = PrivateCluster.Password;

    [Fact]
    public async Task A_dead_cluster_primary_and_its_unserved_slots_are_critical()
    {
        await using var cluster = await PrivateCluster.StartAsync();
        var nodes = cluster.Nodes;
        var settings = cluster.Settings;

        await using (var healthy = new RedisDiagnostics(settings))
        {
            var ok = Assert.Single(await RunAsync(healthy));
            Assert.Equal(Severity.Info, ok.Severity);
            Assert.Equal("All 3 Redis servers answer (3 primaries, 0 replicas)", ok.Title);
        }

        await nodes[2].KillAsync();
        await PrivateCluster.WaitForStateAsync(nodes[0], "fail");

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

    [Fact]
    public async Task A_dead_cluster_replica_is_one_warning_that_names_it()
    {
        await using var cluster = await PrivateCluster.StartAsync(replicas: true);
        var replica = cluster.Nodes[3];
        await using (var before = new RedisDiagnostics(cluster.Settings))
            Assert.Equal("All 6 Redis servers answer (3 primaries, 3 replicas)", Assert.Single(await RunAsync(before)).Title);

        // The doctor's connection knew the replica as one before it died, as an application's would.
        await using var doctor = new RedisDiagnostics(cluster.Settings);
        await RunAsync(doctor);
        await replica.KillAsync();
        await PrivateCluster.WaitForFailAsync(cluster.Nodes[0], replica);

        // ... and a connection opened after it died, which knows its role only from CLUSTER NODES.
        await using var late = new RedisDiagnostics(cluster.Settings);
        foreach (var d in new[] { doctor, late })
        {
            var report = await DiagnosticRunner.RunAsync(d.Checks, secrets: d.Secrets, cancellationToken: Ct);

            Assert.False(report.HasCritical, string.Join(" | ", report.Findings.Where(f => f.Severity == Severity.Critical).Select(f => f.Title)));
            var address = $"127.0.0.1:{replica.Port}";
            var about = Assert.Single(report.Findings, f => (f.Title + f.Remedy + string.Concat(f.Evidence.Values)).Contains(address, StringComparison.Ordinal));
            Assert.Equal((Severity.Warning, "redis.servers"), (about.Severity, about.Check));
            Assert.Contains(address, about.Title, StringComparison.Ordinal);
            Assert.All(report.Checks, c => Assert.Equal(CheckOutcome.Completed, c.Outcome));
        }
    }

    [Fact]
    public async Task With_the_first_seed_node_dead_the_checks_still_run_on_the_primaries_that_answer()
    {
        await using var cluster = await PrivateCluster.StartAsync();
        var nodes = cluster.Nodes;
        using var folder = TempFolder.Create("polystore-doctor-cluster-");
        await using var provider = Services(cluster.Settings, folder.FullName);
        var muxer = provider.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>();
        Assert.Equal(3, muxer.GetServers().Length);

        await nodes[0].KillAsync();
        await PrivateCluster.WaitForStateAsync(nodes[1], "fail");

        var report = await provider.GetRequiredService<PolystoreDoctor>().RunAsync(cancellationToken: Ct);

        Assert.DoesNotContain(report.Findings, f => f.Check == "redis.reachable");
        var memory = report.Findings.Where(f => f.Check == "redis.memory").Select(f => f.Evidence["endpoint"]).ToHashSet();
        Assert.Equal([$"127.0.0.1:{nodes[1].Port}", $"127.0.0.1:{nodes[2].Port}"], memory);
        var dead = Assert.Single(report.Findings, f => f.Evidence.GetValueOrDefault("node") == $"127.0.0.1:{nodes[0].Port}");
        Assert.Equal(Severity.Critical, dead.Severity);
    }

    [Fact]
    public async Task The_health_check_judges_every_primary_of_a_cluster()
    {
        await using var cluster = await PrivateCluster.StartAsync();
        var nodes = cluster.Nodes;
        using var folder = TempFolder.Create("polystore-doctor-cluster-");
        await using var provider = Services(cluster.Settings, folder.FullName);
        var health = provider.GetRequiredService<HealthCheckService>();
        async Task<HealthReportEntry> RedisAsync() => (await health.CheckHealthAsync(r => r.Name == "redis", Ct)).Entries["redis"];

        var all = await RedisAsync();
        Assert.Equal(HealthStatus.Healthy, all.Status);
        Assert.Equal(3, all.Data.Count);

        // The first seed node is the first entry: once it alone is down, the other shards still serve.
        await nodes[0].KillAsync();
        var some = await RedisAsync();
        Assert.Equal(HealthStatus.Degraded, some.Status);
        Assert.StartsWith($"127.0.0.1:{nodes[0].Port} down", some.Description, StringComparison.Ordinal);

        await nodes[1].KillAsync();
        await nodes[2].KillAsync();
        Assert.Equal(HealthStatus.Unhealthy, (await RedisAsync()).Status);
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

    /// <summary>An application's services over <paramref name="settings"/> (a redis.yaml written to <paramref name="dir"/>).</summary>
    internal static ServiceProvider Services(RedisSettings settings, string dir)
    {
        var yaml = $"""
            connection:
              url: {settings.Connection.Url}
              password: {settings.Connection.Password}
            pool:
              connection_timeout: {settings.Pool.ConnectionTimeout}
              socket_timeout: {settings.Pool.SocketTimeout}
            cluster:
              enabled: true
              nodes:
            {string.Concat(settings.Cluster.Nodes.Select(n => $"    - {n}\n"))}
            """;
        File.WriteAllText(Path.Combine(dir, "redis.yaml"), yaml);
        var services = new ServiceCollection();
        services.AddSingleton(typeof(Microsoft.Extensions.Logging.ILogger<>), typeof(Microsoft.Extensions.Logging.Abstractions.NullLogger<>));
        services.AddPolystore(dir).AddRedis();
        return services.BuildServiceProvider();
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class DoctorTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<IReadOnlyList<Finding>> RunAsync(RedisDiagnostics doctor, string check) =>
        await doctor.Checks.Single(c => c.Name == check).Run(Ct);

    [Fact]
    public async Task Keys_without_ttl_are_counted_by_a_bounded_scan_of_our_prefix()
    {
        var prefix = TestServers.UniqueName("ttl") + ":";
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        var db = muxer.GetDatabase();
        var writes = Enumerable.Range(0, 60).Select(i => i < 50
            ? db.StringSetAsync(prefix + i, "v")
            : db.StringSetAsync(prefix + i, "v", TimeSpan.FromMinutes(5)));
        await Task.WhenAll(writes);
        try
        {
            await using var doctor = new RedisDiagnostics(TestServers.Redis, new RedisDiagnosticOptions { ScanPattern = prefix + "*" });
            var f = Assert.Single(await RunAsync(doctor, "redis.keys_without_ttl"));

            Assert.Equal(Severity.Warning, f.Severity);
            Assert.Equal(("60", "50", "83.3%"), (f.Evidence["sampled_keys"], f.Evidence["without_ttl"], f.Evidence["without_ttl_fraction"]));
            Assert.Equal("50", f.Evidence["prefix." + prefix]);
            Assert.Contains($"--scan --pattern '{prefix}*'", f.Remedy, StringComparison.Ordinal);
            Assert.DoesNotContain("--askpass", f.Remedy, StringComparison.Ordinal); // under xargs it would read an empty password

            // The remedy runs as printed: bash asks for the password once (here on stdin) and every key gets its TTL.
            var remedy = f.Remedy!.Split('\n')[^1];
            Assert.StartsWith("( read -rsp 'Redis password: ' REDISCLI_AUTH", remedy, StringComparison.Ordinal);
            var run = Process.Start(new ProcessStartInfo("bash", ["-c", remedy]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true })!;
            await run.StandardInput.WriteLineAsync(TestServers.Redis.Connection.Password);
            run.StandardInput.Close();
            var (stdout, stderr) = (run.StandardOutput.ReadToEndAsync(Ct), run.StandardError.ReadToEndAsync(Ct));
            await run.WaitForExitAsync(Ct);
            Assert.True(run.ExitCode == 0, await stderr);
            Assert.DoesNotContain("NOAUTH", await stdout, StringComparison.Ordinal);
            var ttls = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => db.KeyTimeToLiveAsync(prefix + i)));
            Assert.All(ttls, ttl => Assert.NotNull(ttl));

            // The sample is bounded: never more keys than asked for, whatever the keyspace holds.
            await using var bounded = new RedisDiagnostics(TestServers.Redis, new RedisDiagnosticOptions { ScanPattern = prefix + "*", TtlSampleSize = 25 });
            Assert.Equal("25", Assert.Single(await RunAsync(bounded, "redis.keys_without_ttl")).Evidence["sampled_keys"]);
        }
        finally
        {
            await db.KeyDeleteAsync(Enumerable.Range(0, 60).Select(i => (RedisKey)(prefix + i)).ToArray());
        }
    }

    [Fact]
    public async Task No_limit_with_noeviction_is_flagged_and_a_tiny_maxmemory_is_critical()
    {
        await using var redis = await ThrowawayRedis.LaunchAsync();
        await using var doctor = new RedisDiagnostics(redis.Settings);

        var unlimited = Assert.Single(await RunAsync(doctor, "redis.memory"));
        Assert.Equal(Severity.Warning, unlimited.Severity);
        Assert.Equal(("0", "noeviction"), (unlimited.Evidence["maxmemory"], unlimited.Evidence["maxmemory_policy"]));
        Assert.Contains($"redis-cli -h 127.0.0.1 -p {redis.Port} CONFIG SET maxmemory ", unlimited.Remedy, StringComparison.Ordinal);

        await using var admin = await redis.ConnectAsync();
        var server = admin.GetServers()[0];
        var used = long.Parse((await server.InfoAsync("memory")).SelectMany(g => g).First(p => p.Key == "used_memory").Value, System.Globalization.CultureInfo.InvariantCulture);
        var tiny = used + used / 20; // ~95% full
        await server.ConfigSetAsync("maxmemory", tiny.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var full = Assert.Single(await RunAsync(doctor, "redis.memory"));
        Assert.Equal(Severity.Critical, full.Severity);
        Assert.Equal(tiny.ToString(System.Globalization.CultureInfo.InvariantCulture), full.Evidence["maxmemory"]);
        Assert.Contains("writes fail with OOM", full.Title, StringComparison.Ordinal);
        Assert.Contains($"CONFIG SET maxmemory-policy allkeys-lru", full.Remedy, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Memory_remedy_runs_as_printed_and_keeps_the_limit_only_where_there_is_a_config_file(bool withConfigFile)
    {
        await using var redis = new ThrowawayRedis { WithConfigFile = withConfigFile };
        await redis.StartAsync(Ct);
        await using var doctor = new RedisDiagnostics(redis.Settings);

        var f = Assert.Single(await RunAsync(doctor, "redis.memory"));
        Assert.Equal(Severity.Warning, f.Severity);

        // Every command line of the remedy, run as printed (without its trailing "   -- why" comment): none is refused.
        var commands = f.Remedy!.Split('\n').Where(l => l.StartsWith("redis-cli ", StringComparison.Ordinal)).Select(l => l.Split("   --", 2)[0]).ToList();
        Assert.Equal(withConfigFile, commands.Any(l => l.EndsWith("CONFIG REWRITE", StringComparison.Ordinal)));
        foreach (var command in commands)
        {
            using var run = Process.Start(new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var (stdout, stderr) = (run.StandardOutput.ReadToEndAsync(Ct), run.StandardError.ReadToEndAsync(Ct));
            await run.WaitForExitAsync(Ct);
            Assert.True(run.ExitCode == 0 && !(await stdout).Contains("ERR", StringComparison.Ordinal), $"{command}: {await stdout}{await stderr}");
        }
        if (withConfigFile) Assert.Contains("maxmemory ", await File.ReadAllTextAsync(redis.ConfigFile!, Ct), StringComparison.Ordinal);
        else Assert.Contains("without a config file", f.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Evictions_misses_slow_commands_and_blocked_clients_are_reported()
    {
        await using var redis = await ThrowawayRedis.LaunchAsync("--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru", "--slowlog-log-slower-than", "0");
        await using var admin = await redis.ConnectAsync();
        var db = admin.GetDatabase();
        var value = new string('x', 4096);
        for (var batch = 0; batch < 10; batch++)
            await Task.WhenAll(Enumerable.Range(batch * 200, 200).Select(i => db.StringSetAsync($"fill:{i}", value)));
        await Task.WhenAll(Enumerable.Range(0, 1200).Select(i => db.StringGetAsync($"missing:{i}")));

        // A client blocked in BLPOP, spoken in raw RESP so no multiplexer is held up.
        using var blocker = new TcpClient();
        await blocker.ConnectAsync(IPAddress.Loopback, redis.Port, Ct);
        await blocker.GetStream().WriteAsync(Encoding.ASCII.GetBytes("*3\r\n$5\r\nBLPOP\r\n$9\r\nnever:set\r\n$2\r\n30\r\n"), Ct);

        await using var doctor = new RedisDiagnostics(redis.Settings, new RedisDiagnosticOptions { SlowCommandWarning = TimeSpan.Zero, SlowlogEntries = 5 });

        var evictions = Assert.Single(await RunAsync(doctor, "redis.evictions"));
        Assert.Equal(Severity.Warning, evictions.Severity);
        Assert.True(long.Parse(evictions.Evidence["evicted_keys"], System.Globalization.CultureInfo.InvariantCulture) > 0);

        var hit = Assert.Single(await RunAsync(doctor, "redis.hit_ratio"));
        Assert.Equal(Severity.Warning, hit.Severity);
        Assert.True(long.Parse(hit.Evidence["keyspace_misses"], System.Globalization.CultureInfo.InvariantCulture) >= 1200);

        var slow = await RunAsync(doctor, "redis.slowlog");
        Assert.Equal(5, slow.Count(f => f.Severity == Severity.Warning));
        var summary = Assert.Single(slow, f => f.Severity == Severity.Info);
        Assert.Equal("5", summary.Evidence["entries_read"]);

        Finding clients = null!;
        for (var i = 0; i < 300; i++) // up to 30 s: the blocked client is another task's, and a loaded machine may start it late
        {
            clients = Assert.Single(await RunAsync(doctor, "redis.clients"));
            if (clients.Evidence["blocked_clients"] == "1") break;
            await Task.Delay(100, Ct);
        }
        Assert.Equal("1", clients.Evidence["blocked_clients"]);
        Assert.True(int.Parse(clients.Evidence["connected_clients"], System.Globalization.CultureInfo.InvariantCulture) >= 2);
    }

    [Fact]
    public async Task With_config_disabled_tcp_backlog_says_what_it_could_not_see_and_memory_still_works()
    {
        await using var redis = await ThrowawayRedis.LaunchAsync("--rename-command", "CONFIG", "");
        await using var doctor = new RedisDiagnostics(redis.Settings);

        var report = await DiagnosticRunner.RunAsync(doctor.Checks, cancellationToken: Ct);

        Assert.All(report.Checks, c => Assert.Equal(CheckOutcome.Completed, c.Outcome));
        var backlog = Assert.Single(report.Findings, f => f.Check == "redis.tcp_backlog");
        Assert.Equal(Severity.Info, backlog.Severity);
        Assert.Contains("CONFIG is disabled", backlog.Title, StringComparison.Ordinal);
        Assert.Contains(report.Findings, f => f.Check == "redis.memory" && f.Evidence["maxmemory_policy"] == "noeviction");
    }

    [Fact]
    public async Task The_shared_server_yields_no_critical_finding_and_no_secret()
    {
        await using var doctor = new RedisDiagnostics(TestServers.Redis);

        var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: Ct);

        Assert.All(report.Checks, c => Assert.Equal(CheckOutcome.Completed, c.Outcome));
        Assert.False(report.HasCritical, string.Join(" | ", report.Findings.Where(f => f.Severity == Severity.Critical).Select(f => f.Title)));
        var backlog = Assert.Single(report.Findings, f => f.Check == "redis.tcp_backlog");
        Assert.Equal("511", backlog.Evidence["tcp_backlog"]);
        var password = TestServers.Get("REDIS_PASSWORD")!;
        Assert.All(report.Findings, f => Assert.DoesNotContain(password, f.Title + f.Remedy + string.Concat(f.Evidence.Values), StringComparison.Ordinal));
    }

    [Fact]
    public async Task In_a_cluster_every_primary_is_checked()
    {
        var cluster = TestServers.RedisCluster;
        if (cluster is null) Assert.Skip("no Redis Cluster: run ./run up --redis-cluster");
        await using var doctor = new RedisDiagnostics(cluster);

        var memory = await RunAsync(doctor, "redis.memory");

        Assert.Equal(3, memory.Select(f => f.Evidence["endpoint"]).Distinct().Count());
    }
}

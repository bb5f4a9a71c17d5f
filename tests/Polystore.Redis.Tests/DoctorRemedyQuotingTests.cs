using System.Diagnostics;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>Remedies that carry keys from data, and the ping of a server that is down.</summary>
public sealed class DoctorRemedyQuotingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<IReadOnlyList<Finding>> RunAsync(RedisDiagnostics doctor, string check) =>
        await doctor.Checks.Single(c => c.Name == check).Run(Ct);

    /// <summary>Runs a shell line with bash, where redis-cli is replaced by printf so each argument it would get prints on a line.</summary>
    private static async Task<(int Exit, string Out, string Err)> ShellAsync(string line)
    {
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("redis-cli() { printf '<%s>\\n' \"$@\"; }; " + line);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(Ct);
        var stderr = p.StandardError.ReadToEndAsync(Ct);
        await p.WaitForExitAsync(Ct);
        return (p.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Ttl_remedy_is_valid_shell_for_a_prefix_with_a_quote()
    {
        var prefix = TestServers.UniqueName("ttl") + "'q:";
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        var db = muxer.GetDatabase();
        var keys = Enumerable.Range(0, 25).Select(i => (RedisKey)(prefix + i)).ToArray();
        await Task.WhenAll(keys.Select(k => db.StringSetAsync(k, "v")));
        try
        {
            await using var doctor = new RedisDiagnostics(TestServers.Redis, new RedisDiagnosticOptions { ScanPattern = prefix + "*" });
            var f = Assert.Single(await RunAsync(doctor, "redis.keys_without_ttl"));
            var command = f.Remedy!.Split('\n').Last();

            // Syntax check only (bash -n): nothing runs.
            var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardError = true };
            psi.ArgumentList.Add("-n");
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(command);
            using var p = Process.Start(psi)!;
            var err = await p.StandardError.ReadToEndAsync(Ct);
            await p.WaitForExitAsync(Ct);
            Assert.True(p.ExitCode == 0, $"remedy is not valid shell: {command}\n{err}");
        }
        finally
        {
            await db.KeyDeleteAsync(keys);
        }
    }

    [Fact]
    public async Task Ttl_remedy_expires_exactly_the_keys_it_scans_even_with_a_space_a_quote_or_a_newline_in_them()
    {
        var prefix = TestServers.UniqueName("ttlexact") + ":";
        // A newline splits a key in two for a line-by-line reader: its second half names another key, which must stay untouched.
        var victim = TestServers.UniqueName("victim");
        RedisKey[] keys = [prefix + "a b", prefix + "o'q\"x", prefix + "l1\n" + victim, prefix + "tab\tend"];
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        var db = muxer.GetDatabase();
        await Task.WhenAll(keys.Append(victim).Select(k => db.StringSetAsync(k, "v")));
        try
        {
            await using var doctor = new RedisDiagnostics(TestServers.Redis, new RedisDiagnosticOptions { ScanPattern = prefix + "*" });
            var f = Assert.Single(await RunAsync(doctor, "redis.keys_without_ttl"));
            Assert.Equal("4", f.Evidence["without_ttl"]);

            // Run as printed, the password typed once (on stdin here).
            var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(f.Remedy!.Split('\n')[^1]);
            using var run = Process.Start(psi)!;
            await run.StandardInput.WriteLineAsync(TestServers.Redis.Connection.Password);
            run.StandardInput.Close();
            var (stdout, stderr) = (run.StandardOutput.ReadToEndAsync(Ct), run.StandardError.ReadToEndAsync(Ct));
            await run.WaitForExitAsync(Ct);
            Assert.True(run.ExitCode == 0, await stderr);

            var ttls = await Task.WhenAll(keys.Select(k => db.KeyTimeToLiveAsync(k)));
            Assert.All(ttls, ttl => Assert.NotNull(ttl));
            Assert.Null(await db.KeyTimeToLiveAsync(victim));
            Assert.True(await db.KeyExistsAsync(victim));
            Assert.Equal(keys.Length, await db.KeyExistsAsync(keys));
            Assert.DoesNotContain("ERR", await stdout, StringComparison.Ordinal);
        }
        finally
        {
            await db.KeyDeleteAsync([.. keys, victim]);
        }
    }

    [Fact]
    public async Task Slowlog_advice_passes_the_key_to_redis_cli_as_one_argument()
    {
        await using var redis = await ThrowawayRedis.LaunchAsync("--slowlog-log-slower-than", "0");
        await using var admin = await redis.ConnectAsync();
        var db = admin.GetDatabase();
        const string key = "big hash;echo INJECTED";
        await db.HashSetAsync(key, "f", "v");
        await db.HashGetAllAsync(key);
        await using var doctor = new RedisDiagnostics(redis.Settings, new RedisDiagnosticOptions { SlowCommandWarning = TimeSpan.Zero, SlowlogEntries = 128 });

        var f = Assert.Single(await RunAsync(doctor, "redis.slowlog"), x => x.Severity == Severity.Warning && x.Title.Contains("HGETALL", StringComparison.Ordinal));
        var command = f.Remedy!.Split("   --", 2)[0];
        var (_, output, _) = await ShellAsync(command);

        Assert.Contains($"<{key}>", output, StringComparison.Ordinal);
        Assert.DoesNotContain("INJECTED\n", output.Replace($"<{key}>", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ping_of_a_closed_port_says_why_it_is_down()
    {
        await using var redis = await ThrowawayRedis.LaunchAsync();
        var settings = redis.Settings;
        await redis.KillAsync();
        var config = RedisDriverSettings.Build(settings);
        config.AbortOnConnectFail = false;
        config.ConnectTimeout = 1000;
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(config);

        var ping = Assert.Single(await RedisPing.PingAsync(muxer, Ct));

        Assert.False(ping.Reachable);
        // The error is the first line of GetStatus(), a timestamp and a header: it says nothing about the failure.
        Assert.DoesNotContain("Endpoint Summary:", ping.Error, StringComparison.Ordinal);
    }
}

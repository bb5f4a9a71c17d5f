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
    public async Task Remedies_for_a_tls_server_say_tls_and_quote_the_acl_user()
    {
        // A server of this test's own that also listens with TLS, under a certificate of this test's own.
        // The key too: nothing of the test is left in the temp folder, whether it passes or not.
        using var folder = TempFolder.Create("polystore-redis-tls-");
        var dir = folder.FullName;
        var (cert, key) = (Path.Combine(dir, "cert.pem"), Path.Combine(dir, "key.pem"));
        using (var openssl = Process.Start(new ProcessStartInfo("openssl",
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
            { RedirectStandardError = true })!)
        {
            var err = await openssl.StandardError.ReadToEndAsync(Ct);
            await openssl.WaitForExitAsync(Ct);
            Assert.True(openssl.ExitCode == 0, err);
        }
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync("--tls-port", tlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no");
        // Redis refuses spaces in a user name; a quote, a ; and a $ must still reach redis-cli as they are.
        const string user = "o'brien;$HOME", password = "tls-user-pw";
        await using (var admin = await redis.ConnectAsync())
        {
            await admin.GetServers()[0].ExecuteAsync("ACL", "SETUSER", user, "on", ">" + password, "~*", "&*", "+@all");
            await Task.WhenAll(Enumerable.Range(0, 3).Select(i => admin.GetDatabase().StringSetAsync($"tls:{i}", "v")));
        }
        var settings = new RedisSettings
        {
            Connection = new() { Url = $"rediss://{Uri.EscapeDataString(user)}@127.0.0.1:{tlsPort}", Password = password },
            Pool = new() { ConnectionTimeout = 5, SocketTimeout = 5 },
        };
        // The application would trust the server's CA through the system store; here the test's connection trusts it.
        var options = RedisDriverSettings.Build(settings);
        options.AllowAdmin = true;
        options.TrustIssuer(cert);
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(options);
        await using var doctor = new RedisDiagnostics(settings, multiplexer: muxer);

        var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: Ct);

        var lines = report.Findings.SelectMany(f => (f.Remedy ?? "").Split('\n')).Where(l => l.Contains("redis-cli ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(lines);
        foreach (var line in lines)
        {
            Assert.Contains($"-p {tlsPort} --user 'o'\\''brien;$HOME' --tls", line, StringComparison.Ordinal);
            var command = line.Split("   --", 2)[0];
            using var check = Process.Start(new ProcessStartInfo("/bin/bash", ["-n", "-c", command]) { RedirectStandardError = true })!;
            var err = await check.StandardError.ReadToEndAsync(Ct);
            await check.WaitForExitAsync(Ct);
            Assert.True(check.ExitCode == 0, $"not valid shell: {command}\n{err}");
        }

        // The TTL remedy runs as printed, over TLS and as that user (redis-cli trusts the CA as OpenSSL's default store would).
        var ttl = Assert.Single(report.Findings, f => f.Check == "redis.keys_without_ttl");
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ttl.Remedy!.Split('\n')[^1]);
        psi.Environment["SSL_CERT_FILE"] = cert;
        using var run = Process.Start(psi)!;
        await run.StandardInput.WriteLineAsync(password);
        run.StandardInput.Close();
        var (stdout, stderr) = (run.StandardOutput.ReadToEndAsync(Ct), run.StandardError.ReadToEndAsync(Ct));
        await run.WaitForExitAsync(Ct);
        Assert.True(run.ExitCode == 0, await stdout + await stderr);
        var db = muxer.GetDatabase();
        Assert.All(await Task.WhenAll(Enumerable.Range(0, 3).Select(i => db.KeyTimeToLiveAsync($"tls:{i}"))), t => Assert.NotNull(t));
        Assert.All(report.Findings, f => Assert.DoesNotContain(password, f.Title + f.Remedy + string.Concat(f.Evidence.Values), StringComparison.Ordinal));
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

using System.Diagnostics;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// redis.yaml's <c>tls:</c> against a redis-server of each test's own listening on TLS under a private CA made by the
/// test: the CA is trusted instead of the system's store, the host name still counts, and a client certificate is
/// presented to a server that demands one.
/// </summary>
public sealed class TlsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // A handshake on a loaded machine can take seconds (3 s once ran out in CI before the TLS reason was known): every
    // connection here gets 10 s, which a refused one never waits for.
    private static RedisSettings Settings(int tlsPort, RedisTlsSettings tls, string host = "127.0.0.1") => new()
    {
        Connection = new() { Url = $"rediss://{host}:{tlsPort}" },
        Pool = new() { ConnectionTimeout = 10, SocketTimeout = 10 },
        Tls = tls,
    };

    /// <summary>Connects once (no background retries) and pings; the exception when it cannot.</summary>
    private static async Task<Exception?> PingAsync(RedisSettings settings, CapturedLogs? logs = null)
    {
        var options = RedisDriverSettings.Build(settings, logs);
        options.AbortOnConnectFail = true;
        options.ConnectRetry = 1;
        try
        {
            await using var muxer = await ConnectionMultiplexer.ConnectAsync(options);
            await muxer.GetDatabase().PingAsync();
            return null;
        }
        catch (RedisConnectionException e)
        {
            return e;
        }
    }

    [Fact]
    public async Task The_configured_ca_is_trusted_and_any_other_ca_is_not()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: false));

        Assert.Null(await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.CaFile })));

        // Without tls.ca_certificate the system's store decides, and it does not know the test's CA.
        var untrusted = await PingAsync(Settings(tlsPort, new()));
        Assert.NotNull(untrusted);
        Assert.Contains("UntrustedRoot", untrusted.Message, StringComparison.Ordinal);

        // Another CA: refused, and the log says why, naming the CA file.
        var logs = new CapturedLogs();
        var wrong = await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.OtherCaFile }), logs);
        Assert.NotNull(wrong);
        // The connection error itself says why, naming the CA file; so does the log, for each connection that tried.
        Assert.Contains($"the server's certificate (CN=redis-server) is refused: it is not issued by a CA of tls.ca_certificate ('{certs.OtherCaFile}')",
            wrong.Message, StringComparison.Ordinal);
        var rejected = logs.Entries.Where(e => e.Id.Name == "RedisTlsCertificateRejected").ToList();
        Assert.NotEmpty(rejected);
        Assert.All(rejected, e => Assert.Contains($"not issued by a CA of tls.ca_certificate ('{certs.OtherCaFile}')", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Ping_says_why_the_servers_certificate_was_refused()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: false));
        // As an application connects: in the background, so the reason only shows when something asks.
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(Settings(tlsPort, new() { CaCertificate = certs.OtherCaFile })));

        var ping = Assert.Single(await RedisPing.PingAsync(muxer, Ct));

        Assert.False(ping.Reachable);
        Assert.EndsWith($": Redis TLS: the server's certificate (CN=redis-server) is refused: it is not issued by a CA of tls.ca_certificate ('{certs.OtherCaFile}'))",
            ping.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_chain_through_an_intermediate_the_server_sends_ends_at_the_configured_root()
    {
        using var certs = new TestCertificates(intermediate: true);
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: false));

        Assert.Null(await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.CaFile })));
        Assert.NotNull(await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.OtherCaFile })));
    }

    [Fact]
    public async Task The_host_name_is_still_checked_against_the_certificate()
    {
        // The certificate names redis.internal only; the connection goes to 127.0.0.1.
        using var certs = new TestCertificates(serverName: "redis.internal");
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: false));

        var logs = new CapturedLogs();
        var error = await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.CaFile }), logs);
        Assert.NotNull(error);
        Assert.Contains("is refused: it does not name the host connected to", error.Message, StringComparison.Ordinal);
        var rejected = logs.Entries.Where(e => e.Id.Name == "RedisTlsCertificateRejected").ToList();
        Assert.NotEmpty(rejected); // each connection of the multiplexer that tried
        Assert.All(rejected, e => Assert.Contains("does not name the host", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_client_certificate_is_presented_to_a_server_that_demands_one()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: true));

        Assert.NotNull(await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.CaFile })));
        Assert.Null(await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.CaFile, ClientCertificate = certs.ClientCertificateFile, ClientKey = certs.ClientKeyFile })));
        // The key may sit in the certificate's file.
        Assert.Null(await PingAsync(Settings(tlsPort, new() { CaCertificate = certs.CaFile, ClientCertificate = certs.ClientCombinedFile })));
    }

    [Fact]
    public async Task A_cluster_on_tls_trusts_the_ca_for_every_node()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var node = await ThrowawayRedis.LaunchAsync([.. certs.ServerArgs(tlsPort, authClients: true), "--cluster-enabled", "yes", "--tls-cluster", "yes",
            "--cluster-config-file", $"nodes-{tlsPort}.conf"]);
        await using (var admin = await node.ConnectAsync())
            await admin.GetServers()[0].ExecuteAsync("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
        RedisSettings Cluster(RedisTlsSettings tls) => new()
        {
            Pool = new() { ConnectionTimeout = 10, SocketTimeout = 10 },
            Cluster = new() { Enabled = true, Nodes = [$"rediss://127.0.0.1:{tlsPort}"] },
            Tls = tls,
        };
        var trusted = Cluster(new() { CaCertificate = certs.CaFile, ClientCertificate = certs.ClientCertificateFile, ClientKey = certs.ClientKeyFile });
        await PrivateCluster.WaitForStateAsync(node, "ok");
        var options = RedisDriverSettings.Build(trusted);
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(options);
        var db = muxer.GetDatabase();
        // Keys of different slots, all on the one node reached (and re-reached from CLUSTER SLOTS) over TLS.
        foreach (var key in new[] { "a", "b", "c", "{x}1" }) await db.StringSetAsync(key, key);
        Assert.Equal("b", (string?)await db.StringGetAsync("b"));
        Assert.Equal(ServerType.Cluster, muxer.GetServers()[0].ServerType);

        Assert.NotNull(await PingAsync(Cluster(new() { CaCertificate = certs.OtherCaFile, ClientCertificate = certs.ClientCertificateFile, ClientKey = certs.ClientKeyFile })));
    }

    [Fact]
    public async Task The_doctor_reports_each_servers_certificate_and_when_it_expires()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: false));
        var settings = Settings(tlsPort, new() { CaCertificate = certs.CaFile });
        await using var doctor = new RedisDiagnostics(settings);

        // The test CA's certificates are valid for a day: within the default 30-day warning.
        var soon = Assert.Single(await doctor.Checks.Single(c => c.Name == "redis.tls").Run(Ct));

        Assert.Equal(Severity.Warning, soon.Severity);
        Assert.StartsWith($"127.0.0.1:{tlsPort}: TLS certificate CN=redis-server expires on ", soon.Title, StringComparison.Ordinal);
        Assert.EndsWith($"; checked against tls.ca_certificate ('{certs.CaFile}')", soon.Title, StringComparison.Ordinal);
        Assert.Equal("CN=Polystore Test CA", soon.Evidence["issuer"]);
        Assert.Contains($"-p {tlsPort} --tls --cacert {FindingText.ShellQuote(Path.GetFullPath(certs.CaFile))} CONFIG SET tls-cert-file", soon.Remedy, StringComparison.Ordinal);

        await using var relaxed = new RedisDiagnostics(settings, new RedisDiagnosticOptions { TlsExpiryWarning = TimeSpan.FromHours(1) });
        Assert.Equal(Severity.Info, Assert.Single(await relaxed.Checks.Single(c => c.Name == "redis.tls").Run(Ct)).Severity);
    }

    [Fact]
    public async Task Doctor_remedies_carry_the_ca_and_the_client_certificate_and_run_as_printed()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var redis = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: true));
        await using (var admin = await redis.ConnectAsync())
            await Task.WhenAll(Enumerable.Range(0, 3).Select(i => admin.GetDatabase().StringSetAsync($"tls:{i}", "v")));
        // Paths with a space and a quote reach redis-cli as one argument each.
        var dir = Directory.CreateDirectory(Path.Combine(certs.Directory, "o'brien files")).FullName;
        string Copy(string file) => File.Exists(Path.Combine(dir, Path.GetFileName(file))) ? Path.Combine(dir, Path.GetFileName(file))
            : new FileInfo(file).CopyTo(Path.Combine(dir, Path.GetFileName(file))).FullName;
        var (ca, cert, key) = (Copy(certs.CaFile), Copy(certs.ClientCertificateFile), Copy(certs.ClientKeyFile));
        var settings = Settings(tlsPort, new() { CaCertificate = ca, ClientCertificate = cert, ClientKey = key });
        await using var doctor = new RedisDiagnostics(settings);

        var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: Ct);

        Assert.DoesNotContain(report.Findings, f => f.Severity == Severity.Critical);
        var lines = report.Findings.SelectMany(f => (f.Remedy ?? "").Split('\n')).Where(l => l.Contains("redis-cli ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(lines);
        var quoted = $"--tls --cacert {FindingText.ShellQuote(ca)} --cert {FindingText.ShellQuote(cert)} --key {FindingText.ShellQuote(key)}";
        Assert.All(lines, line => Assert.Contains($"-p {tlsPort} {quoted}", line, StringComparison.Ordinal));

        // The TTL remedy runs as printed against a server that demands a client certificate, with no other trust set up.
        var ttl = Assert.Single(report.Findings, f => f.Check == "redis.keys_without_ttl");
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ttl.Remedy!.Split('\n')[^1]);
        psi.Environment.Remove("SSL_CERT_FILE");
        psi.Environment.Remove("SSL_CERT_DIR");
        using var run = Process.Start(psi)!;
        var (stdout, stderr) = (run.StandardOutput.ReadToEndAsync(Ct), run.StandardError.ReadToEndAsync(Ct));
        await run.WaitForExitAsync(Ct);
        Assert.True(run.ExitCode == 0, await stdout + await stderr);
        Assert.DoesNotContain("ERR", await stdout + await stderr, StringComparison.Ordinal);
        await using var check = await redis.ConnectAsync();
        Assert.All(await Task.WhenAll(Enumerable.Range(0, 3).Select(i => check.GetDatabase().KeyTimeToLiveAsync($"tls:{i}"))), t => Assert.NotNull(t));
    }

    [Fact]
    public async Task Sentinel_and_the_primary_it_names_are_both_reached_over_tls_with_the_ca()
    {
        using var certs = new TestCertificates();
        var tlsPort = LoopbackPort.Free();
        await using var primary = await ThrowawayRedis.LaunchAsync(certs.ServerArgs(tlsPort, authClients: true));
        // A sentinel on TLS only, which reaches the primary over TLS too (tls-replication), with the server's certificate.
        var sentinelPort = LoopbackPort.Free();
        var config = Path.Combine(certs.Directory, "sentinel.conf");
        await File.WriteAllTextAsync(config, $"""
            port 0
            bind 127.0.0.1
            tls-port {sentinelPort}
            tls-cert-file {certs.ServerCertificateFile}
            tls-key-file {certs.ServerKeyFile}
            tls-ca-cert-file {certs.CaFile}
            tls-auth-clients yes
            tls-replication yes
            dir {certs.Directory}
            sentinel monitor main 127.0.0.1 {tlsPort} 1

            """, Ct);
        using var sentinel = Process.Start(new ProcessStartInfo("redis-server", [config, "--sentinel"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        try
        {
            sentinel.OutputDataReceived += (_, _) => { };
            sentinel.ErrorDataReceived += (_, _) => { };
            sentinel.BeginOutputReadLine();
            sentinel.BeginErrorReadLine();
            RedisSettings Sentinel(RedisTlsSettings tls) => new()
            {
                Connection = new() { Url = "rediss://127.0.0.1:6379" },
                // Short, unlike Settings: the poll below tries again until the sentinel knows the primary.
                Pool = new() { ConnectionTimeout = 3, SocketTimeout = 3 },
                Sentinel = new() { Enabled = true, MasterName = "main", Sentinels = [new RedisHost { Host = "127.0.0.1", Port = sentinelPort }] },
                Tls = tls,
            };
            var trusted = Sentinel(new() { CaCertificate = certs.CaFile, ClientCertificate = certs.ClientCertificateFile, ClientKey = certs.ClientKeyFile });
            Exception? last = null;
            await Poll.UntilAsync(async () => (last = await PingAsync(trusted)) is null, "the sentinel to name the primary over TLS", Ct,
                state: () => Task.FromResult(last?.Message ?? ""));
            await using var muxer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(trusted));
            await muxer.GetDatabase().StringSetAsync("through-sentinel", "v");
            await using (var direct = await primary.ConnectAsync())
                Assert.Equal("v", (string?)await direct.GetDatabase().StringGetAsync("through-sentinel"));

            var wrong = await PingAsync(Sentinel(new() { CaCertificate = certs.OtherCaFile, ClientCertificate = certs.ClientCertificateFile, ClientKey = certs.ClientKeyFile }));
            Assert.NotNull(wrong);
        }
        finally
        {
            if (!sentinel.HasExited) sentinel.Kill();
            await sentinel.WaitForExitAsync(CancellationToken.None);
        }
    }
}

using System.Diagnostics;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>A private CA, a server certificate it signed for 127.0.0.1, and a client certificate it signed.</summary>
public sealed class PrivateCa : IAsyncLifetime
{
    private readonly TempFolder _folder = TempFolder.Create("polystore-redis-ca-");

    public string Ca => Path.Combine(_folder.FullName, "ca.pem");
    public string ServerCert => Path.Combine(_folder.FullName, "server.pem");
    public string ServerKey => Path.Combine(_folder.FullName, "server.key");
    public string ClientCert => Path.Combine(_folder.FullName, "client.pem");
    public string ClientKey => Path.Combine(_folder.FullName, "client.key");
    /// <summary>A self-signed certificate no server here uses: a CA that signed nothing.</summary>
    public string OtherCa => Path.Combine(_folder.FullName, "other-ca.pem");

    public async ValueTask InitializeAsync()
    {
        var dir = _folder.FullName;
        await OpenSslAsync("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", Path.Combine(dir, "ca.key"), "-out", Ca, "-days", "1", "-subj", "/CN=polystore test CA");
        await OpenSslAsync("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", Path.Combine(dir, "other-ca.key"), "-out", OtherCa, "-days", "1", "-subj", "/CN=other CA");
        foreach (var (name, subject, ext) in new[] { ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1"), ("client", "/CN=polystore client", "extendedKeyUsage=clientAuth") })
        {
            var (key, csr, cert, extFile) = (Path.Combine(dir, name + ".key"), Path.Combine(dir, name + ".csr"), Path.Combine(dir, name + ".pem"), Path.Combine(dir, name + ".ext"));
            await File.WriteAllTextAsync(extFile, ext + "\n");
            await OpenSslAsync("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject);
            await OpenSslAsync("x509", "-req", "-in", csr, "-CA", Ca, "-CAkey", Path.Combine(dir, "ca.key"), "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", extFile);
        }
    }

    public ValueTask DisposeAsync()
    {
        _folder.Dispose();
        return default;
    }

    private static async Task OpenSslAsync(params string[] args)
    {
        using var openssl = Process.Start(new ProcessStartInfo("openssl", args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var err = openssl.StandardError.ReadToEndAsync();
        await openssl.StandardOutput.ReadToEndAsync();
        await openssl.WaitForExitAsync();
        if (openssl.ExitCode != 0) throw new InvalidOperationException($"openssl {string.Join(' ', args)}: {await err}");
    }
}

/// <summary>redis.yaml's <c>tls:</c> section against a real TLS server that only trusts clients its CA signed.</summary>
public sealed class RedisTlsTests(PrivateCa ca) : IClassFixture<PrivateCa>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<(ThrowawayRedis Server, int TlsPort)> StartAsync()
    {
        var tlsPort = LoopbackPort.Free();
        var server = await ThrowawayRedis.LaunchAsync("--tls-port", tlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tls-cert-file", ca.ServerCert, "--tls-key-file", ca.ServerKey, "--tls-ca-cert-file", ca.Ca, "--tls-auth-clients", "yes");
        return (server, tlsPort);
    }

    // Through the config folder, as an application loads it: the tls keys bind and validate.
    private static RedisSettings Load(string yaml)
    {
        using var folder = TempFolder.Create("polystore-redis-tls-yaml-");
        File.WriteAllText(Path.Combine(folder.FullName, "redis.yaml"), yaml);
        return PolystoreConfig.Load(folder.FullName, new Dictionary<string, string>()).Redis!;
    }

    private string Yaml(int port, bool trustCa = true, bool clientCertificate = true) =>
        $"connection:\n  url: rediss://127.0.0.1:{port}\npool:\n  connection_timeout: 2\n  socket_timeout: 2\ntls:\n"
        + (trustCa ? $"  ca_certificate: {ca.Ca}\n" : "")
        + (clientCertificate ? $"  client_certificate: {ca.ClientCert}\n  client_key: {ca.ClientKey}\n" : "  client_certificate: null\n");

    private static async Task<Exception?> PingAsync(RedisSettings settings)
    {
        var options = RedisDriverSettings.Build(settings);
        options.ConnectRetry = 1;
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(options);
        return await Record.ExceptionAsync(() => muxer.GetDatabase().PingAsync());
    }

    [Fact]
    public async Task With_the_private_CA_and_a_client_certificate_the_connection_works()
    {
        var (server, port) = await StartAsync();
        await using var _ = server;

        Assert.Null(await PingAsync(Load(Yaml(port))));
    }

    [Fact]
    public async Task Without_the_CA_or_without_the_client_certificate_the_connection_is_refused()
    {
        var (server, port) = await StartAsync();
        await using var _ = server;

        Assert.IsType<RedisConnectionException>(await PingAsync(Load(Yaml(port, trustCa: false))));
        Assert.IsType<RedisConnectionException>(await PingAsync(Load(Yaml(port, clientCertificate: false))));
        var wrongCa = Load(Yaml(port).Replace(ca.Ca, ca.OtherCa, StringComparison.Ordinal));
        Assert.IsType<RedisConnectionException>(await PingAsync(wrongCa));
    }

    [Fact]
    public async Task Doctor_remedies_carry_the_CA_and_the_client_certificate_and_run_as_printed()
    {
        var (server, port) = await StartAsync();
        await using var _ = server;
        var settings = Load(Yaml(port));
        var options = RedisDriverSettings.Build(settings);
        options.AllowAdmin = true;
        await using var muxer = await ConnectionMultiplexer.ConnectAsync(options);
        await Task.WhenAll(Enumerable.Range(0, 3).Select(i => muxer.GetDatabase().StringSetAsync($"tls-ca:{i}", "v")));
        await using var doctor = new RedisDiagnostics(settings, multiplexer: muxer);

        var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: Ct);

        var ttl = Assert.Single(report.Findings, f => f.Check == "redis.keys_without_ttl");
        var command = ttl.Remedy!.Split('\n')[^1];
        Assert.Contains($"--tls --cacert '{ca.Ca}' --cert '{ca.ClientCert}' --key '{ca.ClientKey}'", command, StringComparison.Ordinal);
        // No SSL_CERT_FILE: the remedy itself says whom to trust and who it is.
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var run = Process.Start(psi)!;
        var (stdout, stderr) = (run.StandardOutput.ReadToEndAsync(Ct), run.StandardError.ReadToEndAsync(Ct));
        await run.WaitForExitAsync(Ct);
        Assert.True(run.ExitCode == 0, await stdout + await stderr);
        Assert.All(await Task.WhenAll(Enumerable.Range(0, 3).Select(i => muxer.GetDatabase().KeyTimeToLiveAsync($"tls-ca:{i}"))), t => Assert.NotNull(t));
    }
}

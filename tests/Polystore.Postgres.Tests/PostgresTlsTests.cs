using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres.Diagnostics;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// postgresql.yaml's <c>sslrootcert</c>, <c>sslcert</c> and <c>sslkey</c> against a PostgreSQL server of this class's own
/// on TLS, under a CA the test makes, that takes only clients whose certificate that CA signed for the user
/// (<c>hostssl ... clientcert=verify-full</c>). The settings go through postgresql.yaml, as an application's do.
/// </summary>
public sealed class PostgresTlsTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly TestCertificates _certs = new(clientName: "postgres");
    private ThrowawayPostgres? _server;

    private ThrowawayPostgres Server => _server!;

    public async ValueTask InitializeAsync() =>
        _server = await ThrowawayPostgres.StartAsync(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n",
            new Dictionary<string, string>
            {
                ["server.crt"] = await File.ReadAllTextAsync(_certs.ServerCertificateFile),
                ["server.key"] = await File.ReadAllTextAsync(_certs.ServerKeyFile),
                ["root.crt"] = await File.ReadAllTextAsync(_certs.CaFile),
                // TCP only over TLS, and only with a client certificate whose CN is the user, besides the password.
                ["pg_hba.conf"] = "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n",
            });

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        _certs.Dispose();
    }

    private PostgresSettings Load(string sslKeys, string host = "127.0.0.1")
    {
        using var folder = TempFolder.Create("polystore-pg-tls-");
        File.WriteAllText(Path.Combine(folder.FullName, "postgresql.yaml"),
            $"connection:\n  host: {host}\n  port: {Server.Port}\n  user: postgres\n  password: {Server.Password}\n{sslKeys}pool:\n  pool_timeout: 5\n");
        return PolystoreConfig.Load(folder.FullName, new Dictionary<string, string>()).Postgres!;
    }

    private string Keys(string mode = "verify-full", string? root = null, bool client = true) =>
        $"  sslmode: {mode}\n  sslrootcert: {root ?? _certs.CaFile}\n"
        + (client ? $"  sslcert: {_certs.ClientCertificateFile}\n  sslkey: {_certs.ClientKeyFile}\n" : "");

    /// <summary>Connects and says whether the session is on TLS and whose certificate the server saw.</summary>
    private static async Task<(bool Ssl, string? ClientDn)> SessionAsync(PostgresSettings settings)
    {
        await using var sources = PostgresDataSources.Create(settings);
        await using var connection = await sources.OpenConnectionAsync(Ct);
        await using var command = new NpgsqlCommand("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", connection);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        Assert.True(await reader.ReadAsync(Ct));
        return (reader.GetBoolean(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }

    // Npgsql's own words for a server certificate its check refused (the chain against sslrootcert, or the host name).
    private const string NpgsqlRefusal = "The remote certificate was rejected by the provided RemoteCertificateValidationCallback";

    private static async Task<string> RefusedAsync(PostgresSettings settings)
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => SessionAsync(settings));
        var messages = new List<string>();
        for (Exception? inner = e; inner is not null; inner = inner.InnerException) messages.Add(inner.Message);
        return string.Join(" | ", messages);
    }

    [Fact]
    public async Task With_the_root_certificate_and_a_client_certificate_the_session_is_on_tls_as_that_client()
    {
        var (ssl, clientDn) = await SessionAsync(Load(Keys()));

        Assert.True(ssl);
        Assert.Equal("/CN=postgres", clientDn);
    }

    [Fact]
    public async Task A_server_certificate_from_another_ca_is_refused()
    {
        var refused = await RefusedAsync(Load(Keys(root: _certs.OtherCaFile)));

        Assert.Contains(NpgsqlRefusal, refused, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_full_checks_the_host_name_and_verify_ca_does_not()
    {
        // The server's certificate names 127.0.0.1 only.
        var refused = await RefusedAsync(Load(Keys(), host: "localhost"));
        Assert.Contains(NpgsqlRefusal, refused, StringComparison.Ordinal);

        var (ssl, _) = await SessionAsync(Load(Keys(mode: "verify-ca"), host: "localhost"));
        Assert.True(ssl);
    }

    [Fact]
    public async Task Without_a_client_certificate_the_server_refuses_the_session()
    {
        var refused = await RefusedAsync(Load(Keys(client: false)));

        Assert.Contains("28000: connection requires a valid client certificate", refused, StringComparison.Ordinal);
        Assert.DoesNotContain(Server.Password, refused, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Ping_says_why_the_server_was_refused_even_behind_a_hosts_group(bool hostsGroup)
    {
        var settings = Load(Keys(root: _certs.OtherCaFile));
        if (hostsGroup)
            settings = new PostgresSettings
            {
                Connection = new()
                {
                    Hosts = [$"127.0.0.1:{Server.Port}"], User = "postgres", Password = Server.Password,
                    Sslmode = PostgresSslMode.VerifyFull, SslRootCert = _certs.OtherCaFile, SslCert = _certs.ClientCertificateFile, SslKey = _certs.ClientKeyFile,
                },
                Pool = settings.Pool,
            };
        await using var sources = PostgresDataSources.Create(settings);

        var ping = Assert.Single(await PostgresPing.PingAsync(sources, Ct));

        Assert.False(ping.Reachable);
        // Not Npgsql's "Unable to connect to a suitable host. Check inner exception for more details.", nor its "The remote
        // certificate was rejected by the provided RemoteCertificateValidationCallback", which does not say what is wrong.
        Assert.Equal("Exception while performing SSL handshake: the server's certificate (CN=redis-server) is refused: "
            + $"it is not issued by a CA of connection.sslrootcert ('{_certs.OtherCaFile}').", ping.Error);
    }

    [Fact]
    public async Task Ping_says_when_the_servers_certificate_does_not_name_the_host()
    {
        // The server's certificate names 127.0.0.1 only; verify-full checks the name the connection used.
        await using var sources = PostgresDataSources.Create(Load(Keys(), host: "localhost"));

        var ping = Assert.Single(await PostgresPing.PingAsync(sources, Ct));

        Assert.False(ping.Reachable);
        Assert.Equal("Exception while performing SSL handshake: the server's certificate (CN=redis-server) is refused: "
            + "it does not name the host connected to (in its subject alternative names).", ping.Error);
    }

    private static async Task<IReadOnlyList<Finding>> TlsFindingsAsync(PostgresSettings settings, PostgresDiagnosticOptions? options = null)
    {
        await using var doctor = new PostgresDiagnostics(settings, options);
        return await doctor.Checks.Single(c => c.Name == "postgres.tls").Run(Ct);
    }

    [Fact]
    public async Task The_doctor_reports_the_servers_certificate_its_expiry_and_what_checks_it()
    {
        // The test CA issues certificates valid for a day: within the default 30-day warning.
        var soon = Assert.Single(await TlsFindingsAsync(Load(Keys())));
        Assert.Equal(Severity.Warning, soon.Severity);
        Assert.StartsWith($"127.0.0.1:{Server.Port}: TLS certificate CN=redis-server expires on ", soon.Title, StringComparison.Ordinal);
        Assert.EndsWith($"; checked against connection.sslrootcert ('{_certs.CaFile}')", soon.Title, StringComparison.Ordinal);
        Assert.Equal(("CN=Polystore Test CA", "verify-full", "True"), (soon.Evidence["issuer"], soon.Evidence["sslmode"], soon.Evidence["verified"]));
        Assert.Contains("Renew the server's certificate", soon.Remedy, StringComparison.Ordinal);

        // Under a shorter warning it is information; sslmode require takes any certificate, which the finding says.
        var later = Assert.Single(await TlsFindingsAsync(Load("  sslmode: require\n"),
            new PostgresDiagnosticOptions { TlsExpiryWarning = TimeSpan.FromHours(1) }));
        Assert.Equal(Severity.Info, later.Severity);
        Assert.EndsWith("; not checked: sslmode require takes any certificate", later.Title, StringComparison.Ordinal);
        Assert.Equal("In postgresql.yaml: sslmode: verify-full with connection.sslrootcert naming the CA's PEM file", later.Remedy);
    }

    [Fact]
    public async Task A_server_without_tls_is_reported_only_where_it_matters()
    {
        Assert.Empty(await TlsFindingsAsync(Load("  sslmode: disable\n")));
        // The private test server speaks no TLS and listens on 127.0.0.1: under prefer nothing leaves the machine
        // unencrypted that matters, under require no connection succeeds.
        var plain = TestServers.Postgres.Connection;
        PostgresSettings Plain(PostgresSslMode mode) =>
            new() { Connection = new() { Host = plain.Host, Port = plain.Port, User = plain.User, Password = plain.Password, Sslmode = mode } };
        Assert.Empty(await TlsFindingsAsync(Plain(PostgresSslMode.Prefer)));

        var refused = Assert.Single(await TlsFindingsAsync(Plain(PostgresSslMode.Require)));

        Assert.Equal(Severity.Critical, refused.Severity);
        Assert.Equal($"{plain.Host}:{plain.Port} offers no TLS: with sslmode require every connection to it fails", refused.Title);
    }
}

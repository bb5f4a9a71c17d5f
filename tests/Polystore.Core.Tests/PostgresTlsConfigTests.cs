using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Core.Tests;

/// <summary>
/// postgresql.yaml's libpq-named TLS files (<c>connection.sslrootcert</c>, <c>.sslcert</c>, <c>.sslkey</c>) are read when
/// the configuration loads, like redis.yaml's: a wrong file or a mode that would not use it is an error naming
/// postgresql.yaml, the line and the key, never quoting the file.
/// </summary>
public sealed class PostgresTlsConfigTests : IDisposable
{
    private static readonly Dictionary<string, string> NoEnvironment = [];
    private readonly ConfigFolder _folder = new();
    // root.crt = the CA, app.crt/app.key = a client certificate it signed; server.key is a key of another certificate.
    private readonly TestCertificates _certs = new(clientName: "app");

    public void Dispose()
    {
        _folder.Dispose();
        _certs.Dispose();
    }

    private string PathOf(string file) => file switch
    {
        "root.crt" => _certs.CaFile,
        "app.crt" => _certs.ClientCertificateFile,
        "app.key" => _certs.ClientKeyFile,
        "other.key" => _certs.ServerKeyFile,
        _ => Path.Combine(_folder.Path, file),
    };

    private PolystoreConfig Load(string connectionKeys, IReadOnlyDictionary<string, string>? environment = null)
    {
        File.WriteAllText(PathOf("postgresql.yaml"), $"connection:\n  host: db.internal\n  password: pw\n{connectionKeys}");
        return PolystoreConfig.Load(_folder.Path, environment ?? NoEnvironment);
    }

    private ConfigError Fails(string connectionKeys)
    {
        var e = Assert.Throws<ConfigException>(() => Load(connectionKeys));
        foreach (var line in File.ReadAllText(_certs.ClientKeyFile).Split('\n').Where(l => l.Length > 0 && !l.StartsWith("-----", StringComparison.Ordinal)))
            Assert.DoesNotContain(line, e.Message, StringComparison.Ordinal);
        return Assert.Single(e.Errors);
    }

    [Fact]
    public void Valid_files_load_with_their_sources()
    {
        var config = Load($"  sslmode: verify-full\n  sslrootcert: {PathOf("root.crt")}\n  sslcert: {PathOf("app.crt")}\n  sslkey: {PathOf("app.key")}\n");
        var c = config.Postgres!.Connection;
        Assert.Equal((PathOf("root.crt"), PathOf("app.crt"), PathOf("app.key")), (c.SslRootCert, c.SslCert, c.SslKey));
        Assert.Equal(("postgresql.yaml", 5), (config.SourceOf(StoreNames.Postgres, "connection.sslrootcert").File, config.SourceOf(StoreNames.Postgres, "connection.sslrootcert").Line));
        Assert.Contains(config.Describe(), e => e.Key == "connection.sslkey" && e.Value == PathOf("app.key"));
    }

    [Theory]
    [InlineData("prefer")]
    [InlineData("require")]
    [InlineData("disable")]
    public void A_root_certificate_needs_a_mode_that_checks_it(string mode)
    {
        var error = Fails($"  sslmode: {mode}\n  sslrootcert: {PathOf("root.crt")}\n");
        Assert.Equal(("connection.sslrootcert", 5), (error.KeyPath, error.Source.Line));
        Assert.Contains($"sslmode is {mode}; set sslmode: verify-full", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_certificate_is_refused_without_tls()
    {
        var error = Fails($"  sslmode: disable\n  sslcert: {PathOf("app.crt")}\n  sslkey: {PathOf("app.key")}\n");
        Assert.Equal("connection.sslcert", error.KeyPath);
        Assert.Contains("sslmode is disable", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sslrootcert", "missing.crt", "does not exist")]
    [InlineData("sslrootcert", "app.key", "holds no PEM certificate")]
    public void A_wrong_root_certificate_file_is_named_with_its_key_and_line(string key, string file, string problem)
    {
        var error = Fails($"  sslmode: verify-ca\n  {key}: {PathOf(file)}\n");
        Assert.Equal(($"connection.{key}", 5), (error.KeyPath, error.Source.Line));
        Assert.Contains($"'{PathOf(file)}' {problem}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_that_is_not_the_certificates_is_named_with_the_postgres_key_names()
    {
        var error = Fails($"  sslmode: require\n  sslcert: {PathOf("app.crt")}\n  sslkey: {PathOf("other.key")}\n");
        Assert.Equal(("connection.sslkey", 6), (error.KeyPath, error.Source.Line));
        Assert.Contains("does not belong to the certificate of connection.sslcert", error.Message, StringComparison.Ordinal);
        var keyAlone = Fails($"  sslmode: require\n  sslkey: {PathOf("app.key")}\n");
        Assert.Equal("connection.sslkey", keyAlone.KeyPath);
        Assert.Contains("is set without connection.sslcert", keyAlone.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_files_can_come_from_the_environment()
    {
        var e = Assert.Throws<ConfigException>(() => Load("  sslmode: verify-full\n",
            new Dictionary<string, string> { ["POLYSTORE__POSTGRES__CONNECTION__SSLROOTCERT"] = PathOf("missing.crt") }));
        var error = Assert.Single(e.Errors);
        Assert.Equal(("connection.sslrootcert", "POLYSTORE__POSTGRES__CONNECTION__SSLROOTCERT"), (error.KeyPath, error.Source.EnvironmentVariable));
    }

    [Fact]
    public void The_url_takes_libpqs_ssl_parameters()
    {
        var url = $"postgresql://app@db.internal/orders?sslmode=verify-full&sslrootcert={Uri.EscapeDataString(PathOf("root.crt"))}"
            + $"&sslcert={Uri.EscapeDataString(PathOf("app.crt"))}&sslkey={Uri.EscapeDataString(PathOf("app.key"))}";
        var c = PolystoreConfig.Load(_folder.Path, new Dictionary<string, string> { ["POLYSTORE_POSTGRES_URL"] = url }).Postgres!.Connection;
        Assert.Equal((PostgresSslMode.VerifyFull, PathOf("root.crt"), PathOf("app.crt"), PathOf("app.key")), (c.Sslmode, c.SslRootCert, c.SslCert, c.SslKey));

        // ... and checks them like the file's keys.
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(_folder.Path,
            new Dictionary<string, string> { ["POLYSTORE_POSTGRES_URL"] = $"postgresql://app@db.internal/orders?sslmode=require&sslrootcert={Uri.EscapeDataString(PathOf("root.crt"))}" }));
        Assert.Equal("connection.sslrootcert", Assert.Single(e.Errors).KeyPath);
    }
}

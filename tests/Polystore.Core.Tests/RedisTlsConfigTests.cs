using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>
/// redis.yaml's <c>tls:</c> files are read when the configuration loads: a missing, unreadable or wrong PEM file is an
/// error naming redis.yaml, the line and the key, and never quoting what the file holds.
/// </summary>
public sealed class RedisTlsConfigTests : IDisposable
{
    private static readonly Dictionary<string, string> NoEnvironment = [];
    private readonly ConfigFolder _folder = new();
    private readonly string _keyPem;

    public RedisTlsConfigTests()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(PathOf("ca.pem"), ca.ExportCertificatePem());
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var client = new CertificateRequest("CN=client", key, HashAlgorithmName.SHA256)
            .Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3]);
        File.WriteAllText(PathOf("client.pem"), client.ExportCertificatePem());
        _keyPem = key.ExportPkcs8PrivateKeyPem();
        File.WriteAllText(PathOf("client.key"), _keyPem);
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        File.WriteAllText(PathOf("other.key"), otherKey.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(PathOf("encrypted.key"), key.ExportEncryptedPkcs8PrivateKeyPem("pw", new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000)));
        File.WriteAllText(PathOf("not-pem.txt"), "just some text\n");
        File.WriteAllText(PathOf("broken.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    }

    public void Dispose() => _folder.Dispose();

    private string PathOf(string file) => Path.Combine(_folder.Path, file);

    private PolystoreConfig Load(string yaml)
    {
        File.WriteAllText(PathOf("redis.yaml"), yaml.ReplaceLineEndings("\n"));
        return PolystoreConfig.Load(_folder.Path, NoEnvironment);
    }

    private ConfigError Fails(string yaml)
    {
        var e = Assert.Throws<ConfigException>(() => Load(yaml));
        // No PEM block, and no line of a key's body, in anything said.
        Assert.DoesNotContain("-----END", e.Message, StringComparison.Ordinal);
        foreach (var line in _keyPem.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("-----", StringComparison.Ordinal)))
            Assert.DoesNotContain(line, e.Message, StringComparison.Ordinal);
        return Assert.Single(e.Errors);
    }

    private string Tls(string keys) => $"connection:\n  url: rediss://127.0.0.1:6380\ntls:\n{keys}";

    [Fact]
    public void Valid_files_load()
    {
        var config = Load(Tls($"  ca_certificate: {PathOf("ca.pem")}\n  client_certificate: {PathOf("client.pem")}\n  client_key: {PathOf("client.key")}\n"));
        Assert.Equal(PathOf("ca.pem"), config.Redis!.Tls.CaCertificate);
        Assert.Equal(("redis.yaml", 4), (config.SourceOf(StoreNames.Redis, "tls.ca_certificate").File, config.SourceOf(StoreNames.Redis, "tls.ca_certificate").Line));
        Assert.Contains(config.Describe(), e => e.Key == "tls.client_key" && e.Value == PathOf("client.key"));
    }

    [Theory]
    [InlineData("missing.pem", "does not exist")]
    [InlineData("not-pem.txt", "holds no PEM certificate")]
    [InlineData("broken.pem", "malformed PEM certificate")]
    [InlineData("client.key", "holds no PEM certificate")]
    [InlineData("", "is a folder")]
    public void A_ca_file_that_is_not_a_pem_certificate_is_named_with_its_key_and_line(string file, string problem)
    {
        var error = Fails(Tls($"  ca_certificate: {PathOf(file)}\n"));
        Assert.Equal(("redis.yaml", 4, 3, "tls.ca_certificate"), (error.Source.File, error.Source.Line, error.Source.Column, error.KeyPath));
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.Contains(PathOf(file), error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("client.pem", "other.key", "tls.client_key", "does not belong to the certificate")]
    [InlineData("client.pem", "encrypted.key", "tls.client_key", "encrypted private key")]
    [InlineData("client.pem", "client.pem", "tls.client_key", "holds no PEM private key")]
    [InlineData("client.pem", "missing.key", "tls.client_key", "does not exist")]
    [InlineData("client.key", "client.key", "tls.client_certificate", "holds no PEM certificate")]
    [InlineData("missing.pem", "client.key", "tls.client_certificate", "does not exist")]
    public void A_client_certificate_or_key_that_does_not_load_is_named_without_its_contents(string certificate, string key, string badKey, string problem)
    {
        var error = Fails(Tls($"  client_certificate: {PathOf(certificate)}\n  client_key: {PathOf(key)}\n"));
        Assert.Equal(badKey, error.KeyPath);
        Assert.Equal(badKey == "tls.client_key" ? 5 : 4, error.Source.Line);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_certificate_without_a_key_needs_the_key_in_its_file()
    {
        var error = Fails(Tls($"  client_certificate: {PathOf("client.pem")}\n"));
        Assert.Equal("tls.client_certificate", error.KeyPath);
        Assert.Contains("put the key there or name its file in tls.client_key", error.Message, StringComparison.Ordinal);
        File.WriteAllText(PathOf("combined.pem"), File.ReadAllText(PathOf("client.pem")) + "\n" + _keyPem);
        Assert.NotNull(Load(Tls($"  client_certificate: {PathOf("combined.pem")}\n")).Redis);
    }

    [Fact]
    public void Pkcs1_rsa_and_sec1_ec_keys_load_as_well_as_pkcs8()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ca = new CertificateRequest("CN=CA 2", caKey, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        using var rsa = RSA.Create(2048);
        using var rsaClient = new CertificateRequest("CN=rsa", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            .Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [4]);
        File.WriteAllText(PathOf("rsa.pem"), rsaClient.ExportCertificatePem());
        File.WriteAllText(PathOf("rsa.key"), rsa.ExportRSAPrivateKeyPem()); // -----BEGIN RSA PRIVATE KEY-----
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ecClient = new CertificateRequest("CN=ec", ec, HashAlgorithmName.SHA256)
            .Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [5]);
        File.WriteAllText(PathOf("ec.pem"), ecClient.ExportCertificatePem());
        File.WriteAllText(PathOf("ec.key"), ec.ExportECPrivateKeyPem()); // -----BEGIN EC PRIVATE KEY-----
        Assert.NotNull(Load(Tls($"  client_certificate: {PathOf("rsa.pem")}\n  client_key: {PathOf("rsa.key")}\n")).Redis);
        Assert.NotNull(Load(Tls($"  client_certificate: {PathOf("ec.pem")}\n  client_key: {PathOf("ec.key")}\n")).Redis);
    }

    [Fact]
    public void A_key_without_its_certificate_is_refused()
    {
        var error = Fails(Tls($"  client_key: {PathOf("client.key")}\n"));
        Assert.Equal(("tls.client_key", 4), (error.KeyPath, error.Source.Line));
    }

    [Fact]
    public void Tls_files_on_a_plain_connection_are_refused()
    {
        var error = Fails($"connection:\n  url: redis://127.0.0.1:6379\ntls:\n  ca_certificate: {PathOf("ca.pem")}\n");
        Assert.Equal(("tls.ca_certificate", 4), (error.KeyPath, error.Source.Line));
        Assert.Contains("use rediss://", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sentinel_and_cluster_files_are_checked_too()
    {
        var sentinel = Fails($$"""
            connection:
              url: rediss://127.0.0.1:6380
            sentinel:
              enabled: true
              master_name: main
              sentinels: [{ host: 127.0.0.1, port: 26379 }]
            tls:
              ca_certificate: {{PathOf("missing.pem")}}
            """);
        Assert.Equal(("tls.ca_certificate", 8), (sentinel.KeyPath, sentinel.Source.Line));
        var cluster = Fails($"""
            cluster:
              enabled: true
              nodes: [rediss://127.0.0.1:7000]
            tls:
              client_certificate: {PathOf("client.pem")}
              client_key: {PathOf("other.key")}
            """);
        Assert.Equal(("tls.client_key", 6), (cluster.KeyPath, cluster.Source.Line));
        // A cluster whose nodes are plain has no use for a CA.
        var plain = Fails($"cluster:\n  enabled: true\n  nodes: [redis://127.0.0.1:7000]\ntls:\n  ca_certificate: {PathOf("ca.pem")}\n");
        Assert.Contains("no cluster node", plain.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tls_keys_can_come_from_the_environment()
    {
        File.WriteAllText(PathOf("redis.yaml"), "connection:\n  url: rediss://127.0.0.1:6380\n");
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(_folder.Path, new Dictionary<string, string> { ["POLYSTORE__REDIS__TLS__CA_CERTIFICATE"] = PathOf("missing.pem") }));
        var error = Assert.Single(e.Errors);
        Assert.Equal(("tls.ca_certificate", "POLYSTORE__REDIS__TLS__CA_CERTIFICATE"), (error.KeyPath, error.Source.EnvironmentVariable));
    }
}

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>redis.yaml's <c>tls:</c> files are checked when the config loads, each error at its key and line.</summary>
public sealed class RedisTlsConfigTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private static ConfigError Fails(string yaml, params (string File, string Contents)[] extra)
    {
        using var folder = new ConfigFolder(("redis.yaml", yaml));
        foreach (var (file, contents) in extra) File.WriteAllText(Path.Combine(folder.Path, file), contents);
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));
        return Assert.Single(e.Errors);
    }

    [Fact]
    public void A_CA_file_that_is_not_there_is_named_with_its_line()
    {
        var error = Fails("connection:\n  url: rediss://cache:6380\ntls:\n  ca_certificate: /nonexistent/ca.pem\n");

        Assert.Equal(("redis.yaml", 4, "tls.ca_certificate"), (error.Source.File, error.Source.Line, error.KeyPath));
        Assert.Contains("/nonexistent/ca.pem does not exist", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_holds_no_certificate_is_refused_without_quoting_it()
    {
        using var folder = new ConfigFolder();
        var notPem = Path.Combine(folder.Path, "secret.txt");
        File.WriteAllText(notPem, "password=hunter22\n");

        var error = Fails($"connection:\n  url: rediss://cache:6380\ntls:\n  ca_certificate: {notPem}\n");

        Assert.Equal("tls.ca_certificate", error.KeyPath);
        Assert.Contains("holds no certificate", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_certificate_without_its_key_is_refused()
    {
        // A real certificate, alone in its file: without tls.client_key, the key must be in that file too.
        using var folder = new ConfigFolder();
        var cert = Path.Combine(folder.Path, "client.pem");
        using (var key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=client", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
            File.WriteAllText(cert, certificate.ExportCertificatePem());
        }

        var error = Fails($"connection:\n  url: rediss://cache:6380\ntls:\n  client_certificate: {cert}\n");

        Assert.Equal("tls.client_certificate", error.KeyPath);
        Assert.Contains("is not a PEM certificate with its private key", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tls_files_on_a_plain_redis_url_are_a_mistake()
    {
        using var folder = new ConfigFolder(("redis.yaml", "connection:\n  url: redis://cache:6379\ntls:\n  client_key: /etc/ssl/private/k.pem\n"));

        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));

        Assert.Equal(
            [(3, "tls", "is set, but no endpoint uses TLS: write the URL as rediss://host:port"), (4, "tls.client_key", "is set without tls.client_certificate")],
            e.Errors.Select(x => (x.Source.Line, x.KeyPath, x.Message)));
    }
}

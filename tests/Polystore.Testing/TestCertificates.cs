using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Polystore.Testing;

/// <summary>
/// A private CA of one test's own, with a server certificate for 127.0.0.1 (or another name), a client certificate
/// and an unrelated second CA, as PEM files in a folder of the test's own that <see cref="Dispose"/> deletes (keys too).
/// </summary>
public sealed class TestCertificates : IDisposable
{
    /// <param name="serverName">The DNS name the server's certificate is for; null = the IP address 127.0.0.1.</param>
    /// <param name="clientName">
    /// The client certificate's common name (PostgreSQL's <c>clientcert=verify-full</c> matches it against the user).
    /// </param>
    /// <param name="intermediate">
    /// Issue the server's certificate from an intermediate CA (signed by the root in <see cref="CaFile"/>), which the
    /// server sends along with its certificate, as a PKI with an offline root does.
    /// </param>
    public TestCertificates(string? serverName = null, bool intermediate = false, string clientName = "polystore-client")
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ca = Authority("Polystore Test CA", caKey);
        Write(CaFile, ca);
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var other = Authority("Some Other CA", otherKey);
        Write(OtherCaFile, other);
        using var middleKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var middle = intermediate ? Intermediate(ca, caKey, middleKey) : null;
        // The server's certificate is its client certificate too (a sentinel or a replica connecting to a primary).
        Issue(middle ?? ca, middle is null ? caKey : middleKey, "redis-server", serverName, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], ServerCertificateFile, ServerKeyFile);
        if (middle is not null) File.AppendAllText(ServerCertificateFile, middle.ExportCertificatePem() + "\n");
        Issue(ca, caKey, clientName, null, ["1.3.6.1.5.5.7.3.2"], ClientCertificateFile, ClientKeyFile);
        File.WriteAllText(ClientCombinedFile, File.ReadAllText(ClientCertificateFile) + File.ReadAllText(ClientKeyFile));
    }

    private readonly TempFolder _folder = TempFolder.Create("polystore-tls-");

    public string Directory => _folder.FullName;
    public string CaFile => Path.Combine(Directory, "ca.pem");
    public string OtherCaFile => Path.Combine(Directory, "other-ca.pem");
    public string ServerCertificateFile => Path.Combine(Directory, "server.pem");
    public string ServerKeyFile => Path.Combine(Directory, "server.key");
    public string ClientCertificateFile => Path.Combine(Directory, "client.pem");
    public string ClientKeyFile => Path.Combine(Directory, "client.key");
    /// <summary>The client certificate and its key in one file.</summary>
    public string ClientCombinedFile => Path.Combine(Directory, "client-combined.pem");

    private static X509Certificate2 Authority(string name, ECDsa key)
    {
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static X509Certificate2 Intermediate(X509Certificate2 ca, ECDsa caKey, ECDsa key)
    {
        var request = new CertificateRequest("CN=Polystore Test Intermediate CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var certificate = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [7, 7, 7]);
        return certificate.CopyWithPrivateKey(key);
    }

    private static void Issue(X509Certificate2 ca, ECDsa caKey, string commonName, string? dnsName, string[] purposes, string certificateFile, string keyFile)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        if (dnsName is null) names.AddIpAddress(IPAddress.Loopback);
        else names.AddDnsName(dnsName);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        var usages = new OidCollection();
        foreach (var purpose in purposes) usages.Add(new Oid(purpose));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var certificate = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        Write(certificateFile, certificate);
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
    }

    private static void Write(string file, X509Certificate2 certificate) => File.WriteAllText(file, certificate.ExportCertificatePem() + "\n");

    public void Dispose() => _folder.Dispose();
}

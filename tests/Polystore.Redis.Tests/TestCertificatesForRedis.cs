using Polystore.Testing;

namespace Polystore.Redis.Tests;

internal static class TestCertificatesForRedis
{
    /// <summary>redis-server arguments for a TLS listener on <paramref name="tlsPort"/> with these certificates.</summary>
    public static string[] ServerArgs(this TestCertificates certificates, int tlsPort, bool authClients) =>
    [
        "--tls-port", tlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--tls-cert-file", certificates.ServerCertificateFile, "--tls-key-file", certificates.ServerKeyFile, "--tls-ca-cert-file", certificates.CaFile,
        "--tls-auth-clients", authClients ? "yes" : "no",
    ];
}

using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Polystore.Core.Configuration;

/// <summary>
/// Whether a server's TLS certificate is one a pinned CA file vouches for, and if not, why not in words: the check
/// Redis connections make (redis.yaml's <c>tls.ca_certificate</c>) and the one the doctor repeats to explain a
/// PostgreSQL server refused under <c>connection.sslrootcert</c>.
/// </summary>
internal static class TlsServerCheck
{
    /// <summary>The TLS Web Server Authentication purpose (id-kp-serverAuth).</summary>
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    /// <summary>
    /// True when <paramref name="certificate"/> chains up to one of <paramref name="authorities"/> (the CA file set under
    /// <paramref name="caKey"/>), through intermediates the server sent if any, and, with <paramref name="checkName"/>,
    /// names the host connected to (the handshake's own check, reported in <paramref name="errors"/>).
    /// </summary>
    public static bool Trusted(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, X509Certificate2Collection authorities,
        string caKey, string caFile, bool checkName, out string reason)
    {
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            reason = "the server sent no certificate";
            return false;
        }
        if (checkName && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            reason = "it does not name the host connected to (in its subject alternative names)";
            return false;
        }
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(authorities);
        // A private CA seldom publishes revocation lists, and none is configured to check against.
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.ApplicationPolicy.Add(new Oid(ServerAuthentication));
        if (chain is not null)
        {
            // The certificates the server sent (intermediates) may complete the chain; they are not trusted for it.
            custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
            foreach (var element in chain.ChainElements) custom.ChainPolicy.ExtraStore.Add(element.Certificate);
        }
        if (custom.Build(leaf))
        {
            reason = "";
            return true;
        }
        var status = custom.ChainStatus.Select(s => s.Status).Where(s => s != X509ChainStatusFlags.NoError).Distinct().ToList();
        reason = status.Contains(X509ChainStatusFlags.UntrustedRoot) || status.Contains(X509ChainStatusFlags.PartialChain)
            ? $"it is not issued by a CA of {caKey} ('{caFile}')"
            : $"its chain up to {caKey} ('{caFile}') is not valid: {string.Join(", ", status)}";
        return false;
    }
}

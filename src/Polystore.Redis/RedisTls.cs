using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polystore.Core.Configuration;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// redis.yaml's <c>tls:</c> on a TLS connection: the server's chain is checked against <c>tls.ca_certificate</c> alone
/// (not the system's store) and its host name against the endpoint, and <c>tls.client_certificate</c> is presented to a
/// server that asks for one. Standalone, sentinel and cluster alike: every connection of the multiplexer goes through
/// these callbacks.
/// </summary>
internal static class RedisTls
{
    /// <summary>The TLS Web Server Authentication purpose (id-kp-serverAuth).</summary>
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    public static void Apply(ConfigurationOptions options, RedisTlsSettings tls)
    {
        var problems = new List<(string Key, string Message)>();
        var (authorities, client) = TlsFiles.Load(TlsKeyNames.Redis, tls.CaCertificate, tls.ClientCertificate, tls.ClientKey, problems);
        if (problems.Count > 0)
        {
            authorities?.DisposeAll();
            client?.Dispose();
            throw new ConfigException([.. problems.Select(p => new ConfigError(new ConfigSource(StoreNames.ConfigFile(StoreNames.Redis), 0, 0), p.Key, p.Message))]);
        }
        if (authorities is not null)
        {
            var caFile = tls.CaCertificate!;
            // The logger is read when a handshake happens: the DI registration sets it after Build.
            options.CertificateValidation += (_, certificate, chain, errors) =>
                Trusted(certificate, chain, errors, authorities, caFile, out var reason)
                || Rejected(options.LoggerFactory, certificate, reason);
        }
        if (client is not null)
            options.CertificateSelection += (_, _, _, _, _) => client;
    }

    /// <summary>
    /// True when <paramref name="certificate"/> names the host connected to (the handshake's own check, which stays on)
    /// and chains up to one of <paramref name="authorities"/>, through intermediates the server sent if any.
    /// </summary>
    internal static bool Trusted(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, X509Certificate2Collection authorities, string caFile, out string reason)
    {
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            reason = "the server sent no certificate";
            return false;
        }
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
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
            ? $"it is not issued by a CA of tls.ca_certificate ('{caFile}')"
            : $"its chain up to tls.ca_certificate ('{caFile}') is not valid: {string.Join(", ", status)}";
        return false;
    }

    // Logged, and thrown so that the driver's connection error says why (a false return only says "rejected by the
    // provided RemoteCertificateValidationCallback"): SslStream lets the callback's exception end the handshake.
    private static bool Rejected(ILoggerFactory? loggerFactory, X509Certificate? certificate, string reason)
    {
        var subject = certificate?.Subject ?? "(none)";
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Polystore.Redis.Tls");
        logger.ServerCertificateRejected(subject, reason);
        throw new AuthenticationException($"Redis TLS: the server's certificate ({subject}) is refused: {reason}");
    }

    private static void DisposeAll(this X509Certificate2Collection certificates)
    {
        foreach (var certificate in certificates) certificate.Dispose();
    }
}

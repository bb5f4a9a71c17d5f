using System.Security.Authentication;
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
                TlsServerCheck.Trusted(certificate, chain, errors, authorities, TlsKeyNames.Redis.CaCertificate, caFile, checkName: true, out var reason)
                || Rejected(options.LoggerFactory, certificate, reason);
        }
        if (client is not null)
            options.CertificateSelection += (_, _, _, _, _) => client;
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

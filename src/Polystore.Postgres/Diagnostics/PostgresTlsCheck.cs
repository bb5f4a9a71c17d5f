using System.Net;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>
/// The TLS certificate each configured server presents (the primary or each host of <c>connection.hosts</c>, and each
/// read replica), asked for as a client asks before its session: when it expires, who issued it, and whether the
/// configured <c>sslmode</c> checks it at all. Nothing to report under <c>sslmode: disable</c>; a server on a loopback
/// address that offers no TLS is not reported either (its traffic never leaves the machine).
/// </summary>
internal static class PostgresTlsCheck
{
    public static async Task<IReadOnlyList<Finding>> RunAsync(PostgresContext ctx, CancellationToken ct)
    {
        var c = ctx.Settings.Connection;
        if (c.Sslmode == PostgresSslMode.Disable) return [];
        var endpoints = PostgresPing.PrimaryEndpoints(ctx.Settings);
        endpoints.AddRange(ctx.Settings.Replication.ReadReplicas.Select(r => (r.Host, r.Port)));
        var offers = await Task.WhenAll(endpoints.Select(e => PostgresTlsDiagnosis.ServerCertificateAsync(e.Host, e.Port, ct))).ConfigureAwait(false);
        var findings = new List<Finding>();
        var now = DateTimeOffset.UtcNow;
        foreach (var ((host, port), offer) in endpoints.Zip(offers))
        {
            var endpoint = $"{host}:{port}";
            if (offer is null) continue; // unreachable: ping and postgres.replication say so
            if (offer.Certificate is not { } certificate)
            {
                // Under require and the verify modes no connection to it succeeds; under allow and prefer they go in plain text.
                var refused = c.Sslmode >= PostgresSslMode.Require;
                if (refused || !IsLoopback(host))
                    findings.Add(ctx.Finding("postgres.tls", refused ? Severity.Critical : Severity.Warning,
                        refused ? $"{endpoint} offers no TLS: with sslmode {ModeName(c.Sslmode)} every connection to it fails"
                            : $"{endpoint} offers no TLS: with sslmode {ModeName(c.Sslmode)} its connections are not encrypted",
                        Evidence(("server", endpoint), ("sslmode", ModeName(c.Sslmode)), ("tls_offered", false)),
                        "On the server: ssl = on with ssl_cert_file and ssl_key_file, then SELECT pg_reload_conf(); in postgresql.yaml: sslmode: verify-full"));
                continue;
            }
            using (certificate)
                findings.Add(Describe(ctx, endpoint, certificate, c, now));
        }
        return [.. findings.OrderByDescending(f => f.Severity).Take(ctx.Limit)];
    }

    private static Finding Describe(PostgresContext ctx, string endpoint, System.Security.Cryptography.X509Certificates.X509Certificate2 certificate,
        PostgresConnectionSettings c, DateTimeOffset now)
    {
        var (severity, when, notAfter, daysLeft) = TlsCertificateReport.Expiry(certificate, now, ctx.Options.TlsExpiryWarning);
        var verified = c.Sslmode is PostgresSslMode.VerifyCa or PostgresSslMode.VerifyFull;
        var check = verified
            ? $"checked against {(c.SslRootCert is { } root ? $"connection.sslrootcert ('{root}')" : "the system's trust store")}"
            : c.Sslmode == PostgresSslMode.Allow
                ? "not used unless the server demands TLS (sslmode allow tries plain text first), and then not checked"
                : $"not checked: sslmode {ModeName(c.Sslmode)} takes any certificate";
        var remedies = new List<string>();
        if (severity != Severity.Info) remedies.Add("Renew the server's certificate (ssl_cert_file, ssl_key_file), then SELECT pg_reload_conf();");
        if (!verified) remedies.Add("In postgresql.yaml: sslmode: verify-full with connection.sslrootcert naming the CA's PEM file");
        return ctx.Finding("postgres.tls", severity,
            $"{endpoint}: TLS certificate {certificate.Subject} {when}; {check}",
            Evidence(("server", endpoint), ("subject", certificate.Subject), ("issuer", certificate.Issuer), ("not_after", notAfter),
                ("days_left", daysLeft), ("sslmode", ModeName(c.Sslmode)), ("verified", verified)),
            remedies.Count == 0 ? null : string.Join("; ", remedies));
    }

    private static bool IsLoopback(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));

    private static string ModeName(PostgresSslMode mode) => ConfigBinder.EnumName(mode);
}

using System.Buffers.Binary;
using System.Security.Cryptography.X509Certificates;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore.Postgres;

/// <summary>
/// Says why a server's certificate was refused under <c>connection.sslrootcert</c>, where Npgsql says only "The remote
/// certificate was rejected by the provided RemoteCertificateValidationCallback": a handshake of its own fetches the
/// server's certificate and checks it as Npgsql's verify-ca/verify-full do (the chain against the file alone, and the
/// host name under verify-full). Ping, the health check and the doctor ask it once a connection has failed so; the
/// application's connections keep Npgsql's own check (its data sources are also built by callers from
/// <see cref="PostgresDriverSettings.Build"/>'s connection string, which can carry only the file). The doctor's
/// <c>postgres.tls</c> reads each server's certificate through the same handshake (<see cref="ServerCertificateAsync"/>).
/// </summary>
internal static class PostgresTlsDiagnosis
{
    /// <summary>Npgsql's words for a server certificate its check refused.</summary>
    public const string NpgsqlRefusal = "The remote certificate was rejected by the provided RemoteCertificateValidationCallback";

    // What the frontend sends to ask for TLS before the startup message: length 8, then the SSLRequest code.
    private const int SslRequestCode = 80877103;

    /// <summary>
    /// <paramref name="failure"/> (a line of <see cref="PostgresFailure.Describe"/>) with Npgsql's refusal replaced by
    /// the reason the check finds at <paramref name="endpoints"/> (each named when there are several); unchanged when
    /// the line does not carry that refusal, no <c>sslrootcert</c> is set, or no endpoint could be asked.
    /// </summary>
    public static async Task<string> ExplainAsync(string failure, PostgresSettings settings, IReadOnlyList<(string Host, int Port)> endpoints, CancellationToken cancellationToken)
    {
        var c = settings.Connection;
        if (!failure.Contains(NpgsqlRefusal, StringComparison.Ordinal) || c.SslRootCert is not { Length: > 0 } caFile
            || c.Sslmode is not (PostgresSslMode.VerifyCa or PostgresSslMode.VerifyFull))
            return failure;
        if (TlsFiles.Authorities(caFile, out _) is not { } authorities) return failure;
        try
        {
            var checkName = c.Sslmode == PostgresSslMode.VerifyFull;
            var reasons = await Task.WhenAll(endpoints.Select(e => RefusalAsync(e.Host, e.Port, authorities, caFile, checkName, cancellationToken))).ConfigureAwait(false);
            var found = endpoints.Zip(reasons).Where(p => p.Second is not null).ToList();
            if (found.Count == 0) return failure;
            var why = found.Select(p => p.Second).Distinct(StringComparer.Ordinal).Count() == 1
                ? found[0].Second!
                : string.Join("; ", found.Select(p => $"{p.First.Host}:{p.First.Port}: {p.Second}"));
            return failure.Replace(NpgsqlRefusal, why, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var authority in authorities) authority.Dispose();
        }
    }

    /// <summary>Why the server at host:port is refused, or null when it is not, does not speak TLS or cannot be asked.</summary>
    private static async Task<string?> RefusalAsync(string host, int port, X509Certificate2Collection authorities, string caFile, bool checkName, CancellationToken cancellationToken)
    {
        string? reason = null;
        await WithTlsAsync(host, port, (stream, ct) => TlsCertificateReport.HandshakeAsync(stream, host, (_, certificate, chain, errors) =>
        {
            if (!TlsServerCheck.Trusted(certificate, chain, errors, authorities, TlsKeyNames.Postgres.CaCertificate, caFile, checkName, out var why))
                reason = $"the server's certificate ({certificate?.Subject ?? "none"}) is refused: {why}";
            return false; // a check only: no session follows
        }, ct), cancellationToken).ConfigureAwait(false);
        return reason;
    }

    /// <summary>
    /// What the server at host:port offers before any session: its certificate (the caller disposes it), a
    /// <see cref="ServerTls"/> without one when it does not speak TLS, or null when it cannot be asked.
    /// </summary>
    public static async Task<ServerTls?> ServerCertificateAsync(string host, int port, CancellationToken cancellationToken)
    {
        X509Certificate2? presented = null;
        var speaksTls = await WithTlsAsync(host, port,
            async (stream, ct) => presented = await TlsCertificateReport.PresentedAsync(stream, host, ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        return speaksTls switch
        {
            null => null,
            false => new ServerTls(null),
            true => new ServerTls(presented),
        };
    }

    /// <summary>
    /// Asks the server for TLS (an SSLRequest, as a client does before its startup message) and, when it agrees, runs
    /// <paramref name="handshake"/> on the connection (the host is the name Npgsql checks, so the check sees what
    /// Npgsql's saw): true when the server answered with TLS, false when it does not speak it, null when it could not
    /// be asked (down, unreachable, no answer within 5 s).
    /// </summary>
    private static Task<bool?> WithTlsAsync(string host, int port, Func<Stream, CancellationToken, Task> handshake, CancellationToken cancellationToken) =>
        TlsCertificateReport.OverTcpAsync<bool?>(host, port, async (stream, ct) =>
        {
            var request = new byte[8];
            BinaryPrimitives.WriteInt32BigEndian(request, request.Length);
            BinaryPrimitives.WriteInt32BigEndian(request.AsSpan(4), SslRequestCode);
            await stream.WriteAsync(request, ct).ConfigureAwait(false);
            var answer = new byte[1];
            if (await stream.ReadAsync(answer, ct).ConfigureAwait(false) != 1) return null;
            if (answer[0] != (byte)'S') return false;
            await handshake(stream, ct).ConfigureAwait(false);
            return true;
        }, null, cancellationToken);
}

/// <summary>What a PostgreSQL server offered when asked for TLS: its certificate, or null when it does not speak TLS.</summary>
internal sealed record ServerTls(X509Certificate2? Certificate);

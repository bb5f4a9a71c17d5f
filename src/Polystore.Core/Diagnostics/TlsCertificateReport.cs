using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Polystore.Core.Diagnostics;

/// <summary>
/// What the doctors say of a server's TLS certificate: when it expires, and how soon that matters. The certificate is
/// fetched in a handshake of the doctor's own, so a certificate about to expire is reported while connections still work.
/// </summary>
internal static class TlsCertificateReport
{
    // Per server: the answer is one finding or one line, never worth a long wait.
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The certificate a server that speaks TLS from the first byte (Redis) presents at host:port (the caller disposes
    /// it), or null when it presents none or cannot be reached within 5 s.
    /// </summary>
    public static Task<X509Certificate2?> PresentedAsync(string host, int port, CancellationToken cancellationToken) =>
        OverTcpAsync(host, port, (stream, ct) => PresentedAsync(stream, host, ct), null, cancellationToken);

    /// <summary>The certificate presented in a TLS handshake over <paramref name="stream"/>; the handshake is then refused (a look only).</summary>
    public static async Task<X509Certificate2?> PresentedAsync(Stream stream, string host, CancellationToken cancellationToken)
    {
        X509Certificate2? presented = null;
        await HandshakeAsync(stream, host, (_, certificate, _, _) =>
        {
            if (certificate is not null) presented ??= X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return false;
        }, cancellationToken).ConfigureAwait(false);
        return presented;
    }

    /// <summary>
    /// A TLS handshake over <paramref name="stream"/> for <paramref name="host"/> (the name the certificate is checked
    /// against) with <paramref name="look"/> as the certificate callback; a refusal by <paramref name="look"/> ends it quietly.
    /// </summary>
    public static async Task HandshakeAsync(Stream stream, string host, RemoteCertificateValidationCallback look, CancellationToken cancellationToken)
    {
        var tls = new SslStream(stream, leaveInnerStreamOpen: true);
        await using (tls.ConfigureAwait(false))
        {
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = host,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = look,
            };
            try
            {
                await tls.AuthenticateAsClientAsync(options, cancellationToken).ConfigureAwait(false);
            }
            catch (AuthenticationException)
            {
                // The callback's refusal, on purpose.
            }
        }
    }

    /// <summary>
    /// Connects to host:port and runs <paramref name="use"/> on the connection within 5 s; <paramref name="unreachable"/>
    /// when the server is down, unreachable or does not answer in time.
    /// </summary>
    public static async Task<T> OverTcpAsync<T>(string host, int port, Func<NetworkStream, CancellationToken, Task<T>> use, T unreachable, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(Limit);
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(host, port, limit.Token).ConfigureAwait(false);
            return await use(client.GetStream(), limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return unreachable;
        }
    }

    /// <summary>
    /// How <paramref name="certificate"/>'s expiry reads at <paramref name="now"/>: critical once expired, a warning within
    /// <paramref name="warning"/>, else information; the words ("expires on 2027-01-04 10:00 UTC, in 31 days") and the days left.
    /// </summary>
    public static (Severity Severity, string When, string NotAfter, string DaysLeft) Expiry(X509Certificate2 certificate, DateTimeOffset now, TimeSpan warning)
    {
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        var left = notAfter - now;
        var severity = left <= TimeSpan.Zero ? Severity.Critical : left <= warning ? Severity.Warning : Severity.Info;
        var until = notAfter.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
        var days = left.TotalDays >= 2 ? $"{Math.Floor(left.TotalDays):0} days" : $"{Math.Max(1, Math.Floor(left.TotalHours)):0} hours";
        var when = left <= TimeSpan.Zero ? $"expired on {until}" : $"expires on {until}, in {days}";
        return (severity, when, notAfter.ToString("O", CultureInfo.InvariantCulture), Math.Floor(left.TotalDays).ToString("0", CultureInfo.InvariantCulture));
    }
}

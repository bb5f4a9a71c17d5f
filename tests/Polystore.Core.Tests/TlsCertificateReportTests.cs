using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Polystore.Core.Diagnostics;

namespace Polystore.Core.Tests;

/// <summary>How the doctors grade a server certificate's expiry (the TLS tests meet only certificates valid for a day).</summary>
public sealed class TlsCertificateReportTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(-1.0, Severity.Critical, "expired on 2026-12-03 12:00 UTC", "-1")]
    [InlineData(0.5, Severity.Warning, "expires on 2026-12-05 00:00 UTC, in 12 hours", "0")]
    [InlineData(10.0, Severity.Warning, "expires on 2026-12-14 12:00 UTC, in 10 days", "10")]
    [InlineData(90.0, Severity.Info, "expires on 2027-03-04 12:00 UTC, in 90 days", "90")]
    public void Expired_is_critical_within_the_window_a_warning_and_later_information(double days, Severity severity, string when, string daysLeft)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var certificate = new CertificateRequest("CN=db1", key, HashAlgorithmName.SHA256).CreateSelfSigned(Now.AddDays(-100), Now.AddDays(days));

        var expiry = TlsCertificateReport.Expiry(certificate, Now, TimeSpan.FromDays(30));

        Assert.Equal((severity, when, daysLeft), (expiry.Severity, expiry.When, expiry.DaysLeft));
    }
}

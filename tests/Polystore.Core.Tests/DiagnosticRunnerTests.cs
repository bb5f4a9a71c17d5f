using Polystore.Core.Diagnostics;

namespace Polystore.Core.Tests;

public sealed class DiagnosticRunnerTests
{
    private static Finding F(string check, Severity s) => new("postgres", check, s, check, new Dictionary<string, string>());

    [Fact]
    public async Task A_failing_and_a_hanging_check_become_findings_and_hide_nothing()
    {
        var checks = new[]
        {
            new DiagnosticCheck("postgres", "ok", _ => Task.FromResult<IReadOnlyList<Finding>>([F("ok", Severity.Critical)])),
            new DiagnosticCheck("postgres", "throws", _ => throw new InvalidOperationException("Password=hunter22 rejected for user app")),
            // Ignores its token on purpose: the runner must still give up on it.
            new DiagnosticCheck("redis", "hangs", async _ => { await Task.Delay(Timeout.Infinite, TestContext.Current.CancellationToken); return []; }, TimeSpan.FromMilliseconds(200)),
            new DiagnosticCheck("redis", "cooperative", async ct => { await Task.Delay(Timeout.Infinite, ct); return []; }, TimeSpan.FromMilliseconds(200)),
        };
        var report = await DiagnosticRunner.RunAsync(checks, secrets: ["hunter22"], cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal([CheckOutcome.Completed, CheckOutcome.Failed, CheckOutcome.TimedOut, CheckOutcome.TimedOut], report.Checks.Select(c => c.Outcome));
        Assert.True(report.HasCritical);
        var failed = Assert.Single(report.Findings, f => f.Check == "throws");
        Assert.Equal(Severity.Warning, failed.Severity);
        Assert.Contains("could not run", failed.Title, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", failed.Title, StringComparison.Ordinal);
        foreach (var name in new[] { "hangs", "cooperative" })
        {
            var timedOut = Assert.Single(report.Findings, f => f.Check == name);
            Assert.Equal(Severity.Warning, timedOut.Severity);
            Assert.Contains("did not finish within 0.2 s", timedOut.Title, StringComparison.Ordinal);
        }
        Assert.Equal(Severity.Critical, report.Findings[0].Severity); // most severe first
    }

    [Fact]
    public async Task Many_concurrent_checks_respect_the_concurrency_limit_and_all_report()
    {
        var running = 0;
        var peak = 0;
        var checks = Enumerable.Range(0, 128).Select(i => new DiagnosticCheck(i % 2 == 0 ? "postgres" : "redis", $"c{i}", async ct =>
        {
            var now = Interlocked.Increment(ref running);
            int seen;
            while ((seen = Volatile.Read(ref peak)) < now && Interlocked.CompareExchange(ref peak, now, seen) != seen) { }
            await Task.Yield();
            await Task.Delay(1, ct);
            Interlocked.Decrement(ref running);
            if (i % 10 == 0) throw new InvalidOperationException($"boom {i}");
            return (IReadOnlyList<Finding>)[F($"c{i}", (Severity)(i % 3))];
        })).ToList();

        var report = await DiagnosticRunner.RunAsync(checks, maxConcurrency: 8, cancellationToken: TestContext.Current.CancellationToken);

        Assert.InRange(peak, 1, 8);
        Assert.Equal(128, report.Checks.Count);
        Assert.Equal(checks.Select(c => c.Name), report.Checks.Select(c => c.Name)); // order kept
        Assert.Equal(128, report.Findings.Count); // one per check, failed or not
        Assert.Equal(13, report.Checks.Count(c => c.Outcome == CheckOutcome.Failed));
        Assert.Equal(128, report.Findings.Select(f => f.Check).Distinct().Count());
        Assert.Equal(report.Findings.OrderByDescending(f => f.Severity).Select(f => f.Severity), report.Findings.Select(f => f.Severity));
    }

    [Fact]
    public void Finding_text_helpers_format()
    {
        Assert.Equal("1.5 KiB", FindingText.Bytes(1536));
        Assert.Equal("93.4%", FindingText.Percent(0.934));
        Assert.Equal("SELECT *** FROM x", FindingText.Snippet("SELECT   sekret\n FROM x", ["sekret"]));
        Assert.Equal(new Dictionary<string, string> { ["a"] = "1.5", ["b"] = "x" }, FindingText.Evidence(("a", 1.5), ("b", "x"), ("c", null)));
    }
}

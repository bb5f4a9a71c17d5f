using System.Diagnostics;

namespace Polystore.Core.Diagnostics;

/// <summary>One diagnostic check: a name, the store it looks at, and the work that produces findings.</summary>
/// <param name="Store">postgres, mongo or redis (<see cref="Configuration.StoreNames"/>).</param>
/// <param name="Name">A stable identifier, for example <c>postgres.unused_indexes</c>.</param>
/// <param name="Run">Looks and returns what it found (an empty list when all is well).</param>
/// <param name="Timeout">How long this check may take; null uses the runner's default.</param>
public sealed record DiagnosticCheck(
    string Store,
    string Name,
    Func<CancellationToken, Task<IReadOnlyList<Finding>>> Run,
    TimeSpan? Timeout = null);

/// <summary>How one check ended.</summary>
public enum CheckOutcome
{
    /// <summary>It ran to the end; its findings are complete.</summary>
    Completed,
    /// <summary>It threw; a finding says why.</summary>
    Failed,
    /// <summary>It did not finish within its timeout; a finding says so.</summary>
    TimedOut,
}

/// <summary>What happened to one check.</summary>
/// <param name="Store">postgres, mongo or redis (<see cref="Configuration.StoreNames"/>).</param>
/// <param name="Name">The check's identifier.</param>
/// <param name="Outcome">Completed, failed or timed out.</param>
/// <param name="Elapsed">How long it ran.</param>
/// <param name="FindingCount">How many findings it contributed.</param>
public sealed record CheckResult(string Store, string Name, CheckOutcome Outcome, TimeSpan Elapsed, int FindingCount);

/// <summary>Everything a doctor run saw.</summary>
/// <param name="Findings">All findings, most severe first, then by store and check.</param>
/// <param name="Checks">One entry per check, in the order the checks were given.</param>
public sealed record DiagnosticReport(IReadOnlyList<Finding> Findings, IReadOnlyList<CheckResult> Checks)
{
    /// <summary>True when any finding is <see cref="Severity.Critical"/>.</summary>
    public bool HasCritical => Findings.Any(f => f.Severity == Severity.Critical);
}

/// <summary>
/// Runs checks concurrently, each under its own timeout. A check that throws or overruns becomes a
/// finding that says what could not be seen and why; it never hides the other checks' findings. Every
/// finding leaves with its secrets masked: this is the one place that masks them.
/// </summary>
public static class DiagnosticRunner
{
    /// <summary>The timeout of a check that does not set its own.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Runs every check and gathers the findings.</summary>
    /// <param name="checks">The checks to run.</param>
    /// <param name="defaultTimeout">Timeout for checks without their own; null = <see cref="DefaultTimeout"/>.</param>
    /// <param name="secrets">Values (passwords, URLs) to mask in any error message that becomes a finding.</param>
    /// <param name="maxConcurrency">How many checks run at once (at least 1).</param>
    /// <param name="progress">Told of each check as it ends.</param>
    /// <param name="cancellationToken">Stops the whole run.</param>
    public static async Task<DiagnosticReport> RunAsync(
        IEnumerable<DiagnosticCheck> checks,
        TimeSpan? defaultTimeout = null,
        IEnumerable<string?>? secrets = null,
        int maxConcurrency = 8,
        IProgress<CheckResult>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(checks);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        var list = checks.ToList();
        var masks = (secrets ?? []).ToList();
        using var gate = new SemaphoreSlim(maxConcurrency);
        var tasks = list.Select(async c =>
        {
            var outcome = await RunOneAsync(c, defaultTimeout ?? DefaultTimeout, masks, gate, cancellationToken).ConfigureAwait(false);
            progress?.Report(outcome.Result);
            return outcome;
        }).ToList();
        var results = await Task.WhenAll(tasks).ConfigureAwait(false);
        var findings = results.SelectMany(r => r.Findings).Select(f => Mask(f, masks))
            .OrderByDescending(f => f.Severity).ThenBy(f => f.Store, StringComparer.Ordinal).ThenBy(f => f.Check, StringComparer.Ordinal)
            .ToList();
        return new DiagnosticReport(findings, results.Select(r => r.Result).ToList());
    }

    /// <summary>The finding with every secret masked in its title, evidence and remedy.</summary>
    public static Finding Mask(Finding finding, IEnumerable<string?> secrets)
    {
        ArgumentNullException.ThrowIfNull(finding);
        var list = secrets as IReadOnlyCollection<string?> ?? [.. secrets];
        if (list.Count == 0) return finding;
        string Clean(string text) => Redactor.Redact(text, list);
        return finding with
        {
            Title = Clean(finding.Title),
            Remedy = finding.Remedy is null ? null : Clean(finding.Remedy),
            Evidence = finding.Evidence.ToDictionary(e => e.Key, e => Clean(e.Value), StringComparer.Ordinal),
        };
    }

    private static async Task<(IReadOnlyList<Finding> Findings, CheckResult Result)> RunOneAsync(
        DiagnosticCheck check, TimeSpan defaultTimeout, IReadOnlyList<string?> secrets, SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        var watch = Stopwatch.StartNew();
        var timeout = check.Timeout ?? defaultTimeout;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            // WaitAsync as well as the token: a check that ignores its token still cannot hold the run.
            var findings = await Task.Run(() => check.Run(cts.Token), cts.Token).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            return (findings, new CheckResult(check.Store, check.Name, CheckOutcome.Completed, watch.Elapsed, findings.Count));
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && (e is TimeoutException || (cts.IsCancellationRequested && (e is OperationCanceledException || IsTimeout(e)))))
        {
            var finding = new Finding(check.Store, check.Name, Severity.Warning,
                $"{check.Name} did not finish within {timeout.TotalSeconds:0.###} s; what it looks at was not seen",
                new Dictionary<string, string> { ["timeout_s"] = timeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) },
                "Re-run with a longer timeout (polystore doctor --timeout SECONDS), and check the server's load: a slow catalog query is a symptom too.");
            return ([finding], new CheckResult(check.Store, check.Name, CheckOutcome.TimedOut, watch.Elapsed, 1));
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            var message = FirstLine(e, secrets);
            var finding = new Finding(check.Store, check.Name, Severity.Warning,
                $"{check.Name} could not run: {message}",
                new Dictionary<string, string> { ["error"] = e.GetType().Name },
                "Fix the cause above (permissions, connectivity) and re-run polystore doctor; the other checks are unaffected.");
            return ([finding], new CheckResult(check.Store, check.Name, CheckOutcome.Failed, watch.Elapsed, 1));
        }
        finally
        {
            gate.Release();
        }
    }

    private static bool IsTimeout(Exception e) => e.InnerException is TimeoutException or OperationCanceledException;

    // Redacted before it is cut: a secret cut in two would no longer match, and its first half would show.
    private static string FirstLine(Exception e, IEnumerable<string?> secrets)
    {
        var message = Redactor.Redact(e.Message.Split('\n', 2)[0].Trim(), secrets);
        return message.Length > 300 ? message[..300] + "…" : message;
    }
}

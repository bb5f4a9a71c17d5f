using Polystore.Core.Configuration;

namespace Polystore.Core.Diagnostics;

/// <summary>
/// Every diagnostic check of every registered store, as one report. A store that is not registered gets a
/// <c>{store}.configured</c> finding; a store none of whose primaries answers a ping (over the application's own
/// clients; a Redis Cluster has several) gets <c>{store}.reachable</c> and no checks; the others run all their checks concurrently, each under
/// its own timeout. Every finding leaves with its secrets masked. The CLI's <c>polystore doctor</c> and an
/// application host (resolve it from DI after <c>AddPolystore</c>) run the same code.
/// </summary>
/// <param name="config">The loaded configuration: its secrets are masked in every finding.</param>
/// <param name="stores">Each registered store's part (the store packages register them).</param>
public sealed class PolystoreDoctor(PolystoreConfig config, IEnumerable<IStoreDoctor> stores)
{
    private readonly PolystoreConfig _config = config ?? throw new ArgumentNullException(nameof(config));
    private readonly IReadOnlyList<IStoreDoctor> _stores = [.. stores ?? throw new ArgumentNullException(nameof(stores))];

    /// <summary>Runs every check; never throws for a store that is down (that is a finding).</summary>
    /// <param name="options">Timeout and concurrency; null = the defaults.</param>
    /// <param name="progress">Told the number of checks once they are known, then of each one that ends.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    public async Task<DiagnosticReport> RunAsync(PolystoreDoctorOptions? options = null, IProgress<DoctorProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new PolystoreDoctorOptions();
        options.Validate();
        var preFindings = new List<Finding>();
        var diagnostics = new List<IStoreDiagnostics>();
        try
        {
            // A ping waits as long as a check may run, and at least 5 s: a tiny --timeout is about the checks, and must
            // not call a store that takes a second to connect unreachable.
            var pingTimeout = options.CheckTimeout > MinPingTimeout ? options.CheckTimeout : MinPingTimeout;
            var pings = await Task.WhenAll(StoreNames.All.Select(store => PingAsync(store, pingTimeout, cancellationToken))).ConfigureAwait(false);
            foreach (var (store, doctor, primaries) in pings)
            {
                if (doctor is null || primaries.Count == 0) preFindings.Add(StoreFindings.NotConfigured(store, _config.Directory));
                else if (!primaries.Any(p => p.Reachable)) preFindings.Add(StoreFindings.Unreachable(store, primaries[0]));
                else diagnostics.Add(doctor.CreateDiagnostics());
            }

            var checks = diagnostics.SelectMany(s => s.Checks).ToList();
            var secrets = diagnostics.SelectMany(s => s.Secrets).Concat(_config.Secrets()).ToList();
            var completed = 0;
            progress?.Report(new DoctorProgress(0, checks.Count));
            var perCheck = progress is null ? null : new CallbackProgress<CheckResult>(_ => progress.Report(new DoctorProgress(Interlocked.Increment(ref completed), checks.Count)));
            var report = await DiagnosticRunner.RunAsync(checks, options.CheckTimeout, secrets, options.MaxConcurrency, perCheck, cancellationToken).ConfigureAwait(false);
            var order = StoreNames.All.ToList();
            var findings = preFindings.Select(f => DiagnosticRunner.Mask(f, secrets)).Concat(report.Findings)
                .OrderByDescending(f => f.Severity)
                .ThenBy(f => order.IndexOf(f.Store))
                .ThenBy(f => f.Check, StringComparer.Ordinal)
                .ToList();
            return report with { Findings = findings };
        }
        finally
        {
            foreach (var store in diagnostics) await store.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static readonly TimeSpan MinPingTimeout = TimeSpan.FromSeconds(5);

    // Bounded like a check: the ping goes through the application's pool, whose own timeout (pool_timeout, up to
    // 1024 s) would otherwise hold the whole report on a server that accepts connections and never answers.
    private async Task<(string Store, IStoreDoctor? Doctor, IReadOnlyList<StorePing> Primaries)> PingAsync(string store, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var doctor = _stores.FirstOrDefault(s => s.Store == store);
        if (doctor is null) return (store, null, []);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(timeout);
        try
        {
            var results = await doctor.PingAsync(bounded.Token).WaitAsync(bounded.Token).ConfigureAwait(false);
            return (store, doctor, doctor.Primaries(results));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            var seconds = timeout.TotalSeconds.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);
            return (store, doctor, [new StorePing(store, "the configured endpoint", false, null, null, $"no answer within {seconds} s", null)]);
        }
    }

    /// <summary>Reports on the caller's thread (unlike <see cref="Progress{T}"/>, which posts to a captured context).</summary>
    private sealed class CallbackProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

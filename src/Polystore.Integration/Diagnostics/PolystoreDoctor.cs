using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Mongo;
using Polystore.Mongo.Diagnostics;
using Polystore.Postgres;
using Polystore.Postgres.Diagnostics;
using Polystore.Redis;
using Polystore.Redis.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Integration.Diagnostics;

/// <summary>
/// Every diagnostic check of every configured store, as one report. A store the config does not name gets a
/// <c>{store}.configured</c> finding; a store whose primary does not answer a ping (over the application's own
/// clients) gets <c>{store}.reachable</c> and no checks; the others run all their checks concurrently, each under
/// its own timeout. Every finding leaves with its secrets masked. The CLI's <c>polystore doctor</c> and an
/// application host (resolve it from DI after <c>AddPolystore</c>) run the same code.
/// </summary>
public sealed class PolystoreDoctor
{
    private readonly PolystoreConfig _config;
    private readonly PostgresDataSources? _postgres;
    private readonly IConnectionMultiplexer? _redis;
    private readonly IMongoClient? _mongo;

    /// <summary>Prepares the doctor over the clients an application already has; nothing connects until a run.</summary>
    /// <param name="config">The loaded configuration: which stores exist and their settings.</param>
    /// <param name="postgres">The application's PostgreSQL data sources; required when <paramref name="config"/> configures PostgreSQL.</param>
    /// <param name="redis">The application's multiplexer; required when Redis is configured.</param>
    /// <param name="mongo">The application's client; required when MongoDB is configured.</param>
    public PolystoreDoctor(PolystoreConfig config, PostgresDataSources? postgres = null, IConnectionMultiplexer? redis = null, IMongoClient? mongo = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Postgres is not null && postgres is null) throw new ArgumentNullException(nameof(postgres), "PostgreSQL is configured: pass its data sources");
        if (config.Redis is not null && redis is null) throw new ArgumentNullException(nameof(redis), "Redis is configured: pass its multiplexer");
        if (config.Mongo is not null && mongo is null) throw new ArgumentNullException(nameof(mongo), "MongoDB is configured: pass its client");
        _config = config;
        _postgres = postgres;
        _redis = redis;
        _mongo = mongo;
    }

    /// <summary>Runs every check; never throws for a store that is down (that is a finding).</summary>
    /// <param name="options">Timeouts and thresholds; null = the defaults.</param>
    /// <param name="progress">Told the number of checks once they are known, then of each one that ends.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    public async Task<DiagnosticReport> RunAsync(PolystoreDoctorOptions? options = null, IProgress<DoctorProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new PolystoreDoctorOptions();
        options.Validate();
        var preFindings = new List<Finding>();
        var stores = new List<IStoreDiagnostics>();
        try
        {
            var pings = await Task.WhenAll(
                PingAsync(StoreNames.Postgres, _postgres is null ? null : ct => PostgresPing.PingAsync(_postgres, ct), cancellationToken),
                PingAsync(StoreNames.Redis, _redis is null ? null : ct => RedisPing.PingAsync(_redis, ct), cancellationToken),
                PingAsync(StoreNames.Mongo, _mongo is null ? null : ct => MongoPing.PingAsync(_mongo, ct), cancellationToken)).ConfigureAwait(false);
            foreach (var (store, primary) in pings)
            {
                if (primary is null) preFindings.Add(StoreFindings.NotConfigured(store, _config.Directory));
                else if (!primary.Reachable) preFindings.Add(StoreFindings.Unreachable(store, primary));
                else stores.Add(Create(store, options));
            }

            var checks = stores.SelectMany(s => s.Checks).ToList();
            var secrets = stores.SelectMany(s => s.Secrets).Concat(_config.Secrets()).ToList();
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
            foreach (var store in stores) await store.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs <c>EXPLAIN (ANALYZE, BUFFERS)</c> on one statement against the primary, inside a transaction that is
    /// always rolled back and read-only unless <paramref name="allowWrites"/> (see <see cref="PostgresDiagnostics.ExplainAsync"/>).
    /// </summary>
    public async Task<IReadOnlyList<string>> ExplainAsync(string sql, bool allowWrites = false, TimeSpan? statementTimeout = null, CancellationToken cancellationToken = default)
    {
        var settings = _config.Postgres ?? throw new InvalidOperationException($"PostgreSQL is not configured: add {StoreNames.ConfigFile(StoreNames.Postgres)}");
        var diagnostics = new PostgresDiagnostics(settings, applicationPool: _postgres!.Primary);
        await using (diagnostics.ConfigureAwait(false))
            return await diagnostics.ExplainAsync(sql, allowWrites, statementTimeout, cancellationToken).ConfigureAwait(false);
    }

    private IStoreDiagnostics Create(string store, PolystoreDoctorOptions options) => store switch
    {
        StoreNames.Postgres => new PostgresDiagnostics(_config.Postgres!, options.Postgres, _postgres!.Primary),
        StoreNames.Redis => new RedisDiagnostics(_config.Redis!, options.Redis),
        _ => new MongoDiagnostics(_config.Mongo!, options.Mongo, _mongo),
    };

    private static async Task<(string Store, StorePing? Primary)> PingAsync(string store, Func<CancellationToken, Task<IReadOnlyList<StorePing>>>? ping, CancellationToken cancellationToken)
    {
        if (ping is null) return (store, null);
        var results = await ping(cancellationToken).ConfigureAwait(false);
        return (store, results[0]);
    }

    /// <summary>Reports on the caller's thread (unlike <see cref="Progress{T}"/>, which posts to a captured context).</summary>
    private sealed class CallbackProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

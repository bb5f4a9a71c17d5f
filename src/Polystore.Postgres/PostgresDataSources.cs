using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;

namespace Polystore.Postgres;

/// <summary>
/// The pooled connections described by postgresql.yaml: writes go to the primary, reads to a
/// standby (round robin) when replicas or a group of <c>connection.hosts</c> are configured, else to the primary. Dispose once at shutdown.
/// </summary>
public sealed class PostgresDataSources : IAsyncDisposable, IDisposable
{
    private readonly NpgsqlDataSource _root;
    private readonly NpgsqlDataSource? _writesRoot;
    private readonly bool _prePing;
    private readonly Lazy<IReadOnlyList<NpgsqlDataSource>> _replicaProbes;
    private readonly ILogger _logger;
    private readonly TimeSpan _replicaRecheck;
    private long _replicasSkippedUntil; // a TimeProvider.System timestamp; 0 = replicas not skipped
    private int _replicaTrial;          // 1 while one read tries the skipped replicas again

    // The logger factory each data source was built with, so that Polystore code handed only an NpgsqlDataSource
    // (a bulk upsert, say) logs where the application's other messages go.
    private static readonly ConditionalWeakTable<NpgsqlDataSource, ILoggerFactory> LoggerFactories = new();

    // The data sources each one was created with, so that code handed only an NpgsqlDataSource (an outbox dispatcher)
    // finds the connection it may keep a session on.
    private static readonly ConditionalWeakTable<NpgsqlDataSource, PostgresDataSources> Owners = new();
    private readonly NpgsqlDataSource? _direct;

    /// <summary>
    /// The longest <see cref="OpenReadConnectionAsync"/> waits for a connection through the replicas before it reads
    /// from the primary instead. Npgsql gives each host its whole connect timeout (pool_timeout), so a black-holed or
    /// hung standby would otherwise hold every read that tries it for that long.
    /// </summary>
    internal static readonly TimeSpan ReplicaOpenTimeout = TimeSpan.FromSeconds(2);

    private PostgresDataSources(NpgsqlDataSource root, NpgsqlDataSource primary, NpgsqlDataSource reads, NpgsqlDataSource? direct, PostgresSettings settings, TimeSpan replicaRecheck,
        ILoggerFactory? loggerFactory, NpgsqlDataSource? writesRoot = null)
    {
        _root = root;
        _writesRoot = writesRoot;
        _direct = direct;
        Session = direct ?? (settings.Connection.Pooler == PostgresPooler.PgBouncerTransaction ? null : primary);
        _replicaRecheck = replicaRecheck;
        Primary = primary;
        Reads = reads;
        Settings = settings;
        _prePing = settings.Pool.PoolPrePing;
        _logger = loggerFactory?.CreateLogger(PostgresLog.DataSourcesCategory) ?? NullLogger.Instance;
        if (loggerFactory is not null)
            foreach (var source in new[] { root, writesRoot, primary, reads, direct }) if (source is not null) LoggerFactories.AddOrUpdate(source, loggerFactory);
        foreach (var source in new[] { root, writesRoot, primary, reads, direct }) if (source is not null) Owners.AddOrUpdate(source, this);
        // Spans name the server: the configured primary for writes; reads spread over several servers name none.
        if (!ReferenceEquals(primary, reads) && settings.Connection.Hosts.Count == 0)
            PostgresTelemetry.Describe(primary, settings.Connection.Database, settings.Connection.Host, settings.Connection.Port);
        _replicaProbes = new(() => [.. settings.Replication.ReadReplicas.Select(r => BuildProbe(settings, r.Host, r.Port, loggerFactory))]);
    }

    /// <summary>The settings these data sources were built from.</summary>
    public PostgresSettings Settings { get; }

    /// <summary>Connections to the primary: use for writes and for reads that must see them.</summary>
    public NpgsqlDataSource Primary { get; }

    /// <summary>Connections for reads: a standby when one is up (round robin), else the primary.</summary>
    public NpgsqlDataSource Reads { get; }

    /// <summary>
    /// Connections that keep their session: what LISTEN and session advisory locks need. The server itself
    /// (<c>connection.direct</c>) when set; else <see cref="Primary"/>, unless <c>connection.pooler</c> is
    /// <c>pgbouncer-transaction</c>: then null, since through transaction pooling a session's state stays on a server
    /// connection other clients get next.
    /// </summary>
    public NpgsqlDataSource? Session { get; }

    /// <summary>
    /// The <see cref="Session"/> of the data sources <paramref name="dataSource"/> belongs to (null when those go
    /// through PgBouncer in transaction mode without <c>connection.direct</c>); <paramref name="dataSource"/> itself
    /// when it was not built by <see cref="Create"/>.
    /// </summary>
    public static NpgsqlDataSource? SessionSourceOf(NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return Owners.TryGetValue(dataSource, out var owner) ? owner.Session : dataSource;
    }

    /// <summary>Builds the data sources; nothing connects until the first open.</summary>
    /// <param name="settings">postgresql.yaml.</param>
    /// <param name="configure">Optional extra Npgsql setup (type mappings); it runs after the logger factory is set, so it may replace it.</param>
    /// <param name="loggerFactory">
    /// Where Npgsql's own log lines (connections, commands at Debug, errors) and Polystore's PostgreSQL messages go;
    /// null logs nothing. Bulk upserts run on these data sources log there too, unless their options name another.
    /// </param>
    public static PostgresDataSources Create(PostgresSettings settings, Action<NpgsqlDataSourceBuilder>? configure = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        NpgsqlDataSourceBuilder NewBuilder(string name, bool? loadBalance = null)
        {
            var b = new NpgsqlDataSourceBuilder(PostgresDriverSettings.Build(settings).ConnectionString) { Name = name };
            if (loadBalance is { } balance) b.ConnectionStringBuilder.LoadBalanceHosts = balance;
            if (loggerFactory is not null) b.UseLoggerFactory(loggerFactory);
            configure?.Invoke(b);
            return b;
        }
        var builder = NewBuilder(settings.Connection.ApplicationName);
        var direct = BuildDirect(settings, configure, loggerFactory);
        var multiHost = PostgresDriverSettings.IsMultiHost(settings);
        if (settings.Replication.ReadReplicas.Count == 0 && !multiHost)
        {
            var single = builder.Build();
            return new PostgresDataSources(single, single, single, direct, settings, TimeSpan.Zero, loggerFactory);
        }
        // Replicas that did not answer in time are skipped for as long as Npgsql keeps a failed host offline.
        var recheck = TimeSpan.FromSeconds(Math.Max(1, builder.ConnectionStringBuilder.HostRecheckSeconds));
        var multi = builder.BuildMultiHost();
        // connection.hosts: writes go wherever target_session_attributes points (the primary by default), so after a
        // failover new connections find the promoted server.
        var writeTarget = multiHost ? PostgresDriverSettings.TargetSession(settings) : TargetSessionAttributes.Primary;
        var primary = multi.WithTargetSession(writeTarget);
        if (!PostgresDriverSettings.HasStandbys(settings))
            return new PostgresDataSources(multi, primary, primary, direct, settings, TimeSpan.Zero, loggerFactory);
        NpgsqlMultiHostDataSource? writes = null;
        if (builder.ConnectionStringBuilder.LoadBalanceHosts)
        {
            // Load balancing moves the first host tried on every open, a write's too: a cold open of Primary would then
            // start at a replica, and wait out the connect timeout when that replica hangs. Writes get a source of their
            // own that tries the hosts in order (the primary first); reads keep the round robin.
            writes = NewBuilder($"{settings.Connection.ApplicationName}-writes", loadBalance: false).BuildMultiHost();
            primary = writes.WithTargetSession(writeTarget);
        }
        return new PostgresDataSources(multi, primary,
            multi.WithTargetSession(TargetSessionAttributes.PreferStandby),
            direct, settings, recheck, loggerFactory, writes);
    }

    private static NpgsqlDataSource? BuildDirect(PostgresSettings settings, Action<NpgsqlDataSourceBuilder>? configure, ILoggerFactory? loggerFactory)
    {
        if (PostgresDriverSettings.BuildDirect(settings) is not { } connectionString) return null;
        var builder = new NpgsqlDataSourceBuilder(connectionString.ConnectionString) { Name = $"{settings.Connection.ApplicationName}-direct" };
        if (loggerFactory is not null) builder.UseLoggerFactory(loggerFactory);
        // The same type mappings as the pooled connections: a LISTEN session may run queries too.
        configure?.Invoke(builder);
        return builder.Build();
    }

    /// <summary>
    /// The logger factory <paramref name="dataSource"/> (<see cref="Primary"/> or <see cref="Reads"/>) was created with by
    /// <see cref="Create"/>, else null: Polystore components handed only a data source log there by default.
    /// </summary>
    public static ILoggerFactory? LoggerFactoryOf(NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return LoggerFactories.TryGetValue(dataSource, out var factory) ? factory : null;
    }

    /// <summary>
    /// One single-connection data source per configured replica, built at first use and kept: health checks and
    /// <see cref="PostgresPing"/> reach each replica by itself, which the multi-host <see cref="Reads"/> cannot.
    /// </summary>
    internal IReadOnlyList<NpgsqlDataSource> ReplicaProbes => _replicaProbes.Value;

    private static NpgsqlDataSource BuildProbe(PostgresSettings settings, string host, int port, ILoggerFactory? loggerFactory)
    {
        var builder = PostgresDriverSettings.Build(settings);
        builder.Host = host;
        builder.Port = port;
        builder.LoadBalanceHosts = false;
        builder.MinPoolSize = 0;
        builder.MaxPoolSize = 1;
        builder.Timeout = Math.Min(builder.Timeout, 5);
        var probe = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = $"{settings.Connection.ApplicationName}-probe" };
        if (loggerFactory is not null) probe.UseLoggerFactory(loggerFactory);
        return probe.Build();
    }

    /// <summary>
    /// Opens a connection to the primary (pre-pinged when <c>pool_pre_ping</c> is on). Throws
    /// <see cref="PostgresPoolExhaustedException"/> when every pooled connection stays busy for pool_timeout.
    /// </summary>
    public ValueTask<NpgsqlConnection> OpenConnectionAsync(CancellationToken cancellationToken = default) =>
        OpenAsync(Primary, cancellationToken);

    /// <summary>Opens a connection for reads (pre-pinged when <c>pool_pre_ping</c> is on).</summary>
    /// <remarks>
    /// A stopped replica is skipped by Npgsql itself (the refused host is marked offline and the read goes to the
    /// primary). A replica that neither answers nor refuses (black-holed, hung) is skipped here: when no connection
    /// comes through the replicas within 2 s, this read and the following ones go to the primary, until Npgsql's host
    /// recheck interval (<c>HostRecheckSeconds</c>, 10 s by default) has passed; then one read tries the replicas again
    /// while the others stay on the primary. A replica pool that stays exhausted for 2 s is skipped the same way.
    /// </remarks>
    public ValueTask<NpgsqlConnection> OpenReadConnectionAsync(CancellationToken cancellationToken = default)
    {
        if (ReferenceEquals(Reads, Primary)) return OpenAsync(Primary, cancellationToken);
        var until = Volatile.Read(ref _replicasSkippedUntil);
        if (until == 0) return OpenThroughReplicasAsync(trial: false, cancellationToken);
        // Skipped: the primary serves reads until the recheck time, then one read at a time tries the replicas again.
        if (TimeProvider.System.GetTimestamp() < until || Interlocked.CompareExchange(ref _replicaTrial, 1, 0) != 0)
            return OpenAsync(Primary, cancellationToken);
        return OpenThroughReplicasAsync(trial: true, cancellationToken);
    }

    private async ValueTask<NpgsqlConnection> OpenThroughReplicasAsync(bool trial, CancellationToken cancellationToken)
    {
        try
        {
            var connection = await OpenReplicaWithinTimeoutAsync(cancellationToken).ConfigureAwait(false);
            if (connection is null) return await OpenAsync(Primary, cancellationToken).ConfigureAwait(false);
            if (trial)
            {
                Volatile.Write(ref _replicasSkippedUntil, 0);
                _logger.ReadReplicasBack();
            }
            return connection;
        }
        finally
        {
            if (trial) Volatile.Write(ref _replicaTrial, 0);
        }
    }

    /// <summary>A connection through the replicas, or null (and the replicas skipped for a while) when none came in time.</summary>
    private async ValueTask<NpgsqlConnection?> OpenReplicaWithinTimeoutAsync(CancellationToken cancellationToken)
    {
        var pending = OpenAsync(Reads, cancellationToken);
        // A pooled connection is usually there at once: only a wait is bounded (a task and a timer of its own).
        if (pending.IsCompletedSuccessfully) return pending.Result;
        // Bounded from outside: Npgsql does not give up on a server that accepted the connection and never answers
        // its startup message before its own connect timeout, whatever token it is given.
        var open = pending.AsTask();
        try
        {
            return await open.WaitAsync(ReplicaOpenTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is TimeoutException or NpgsqlException)
        {
            // Nothing came through the replicas in time (or they failed): the primary serves this read and the next
            // ones. An open still under way is closed when it completes.
            CloseWhenOpened(open);
            var skip = (long)(_replicaRecheck.TotalSeconds * TimeProvider.System.TimestampFrequency);
            Volatile.Write(ref _replicasSkippedUntil, TimeProvider.System.GetTimestamp() + skip);
            _logger.ReadReplicasSkipped(Redactor.Redact(e, [Settings.Connection.Password]), ReplicaOpenTimeout, _replicaRecheck);
            return null;
        }
        catch
        {
            // The caller gave up: an open that still completes must go back to the pool, not astray.
            CloseWhenOpened(open);
            throw;
        }
    }

    private static void CloseWhenOpened(Task<NpgsqlConnection> open)
    {
        if (open.IsCompletedSuccessfully) open.Result.Dispose();
        else if (open.IsFaulted) _ = open.Exception;
        else if (!open.IsCompleted) _ = open.ContinueWith(static t =>
        {
            if (t.IsCompletedSuccessfully) t.Result.Dispose();
            else _ = t.Exception;
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async ValueTask<NpgsqlConnection> OpenAsync(NpgsqlDataSource source, CancellationToken cancellationToken)
    {
        var connection = await PostgresPool.OpenAsync(source, cancellationToken).ConfigureAwait(false);
        if (!_prePing) return connection;
        try
        {
            // SQLAlchemy's pre-ping: one round trip proves the pooled socket still reaches a live server.
            var ping = new NpgsqlCommand(";", connection);
            await using (ping.ConfigureAwait(false))
                await ping.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch (NpgsqlException e) when (!cancellationToken.IsCancellationRequested)
        {
            // The server restarted or the socket died while pooled: drop every pooled connection, retry once.
            _logger.PrePingFailed(Redactor.Redact(e, [Settings.Connection.Password]), connection.Host, connection.Port);
            await connection.DisposeAsync().ConfigureAwait(false);
            ForgetDeadConnections();
            return await PostgresPool.OpenAsync(source, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Cancelled (or anything else) during the ping: the connection goes back to the pool, not astray.
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>After a failed pre-ping: closes the idle connections of every pool, and forgets what Npgsql learnt about each host.</summary>
    private void ForgetDeadConnections()
    {
        // NpgsqlConnection.ClearPool only reaches pools built from a connection string, not a data source's. The dead
        // server may have connections in both the reads' and the writes' pools.
        foreach (var root in new[] { _root, _writesRoot })
        {
            if (root is null) continue;
            root.Clear();
            // The broken connection marked its host offline for HostRecheckSeconds: the retry, and every open until
            // then, would find "no suitable host" although the restarted server answers again.
            if (root is NpgsqlMultiHostDataSource multi) multi.ClearDatabaseStates();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_replicaProbes.IsValueCreated)
            foreach (var probe in _replicaProbes.Value) await probe.DisposeAsync().ConfigureAwait(false);
        if (_direct is not null) await _direct.DisposeAsync().ConfigureAwait(false);
        if (_writesRoot is not null) await _writesRoot.DisposeAsync().ConfigureAwait(false);
        await _root.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_replicaProbes.IsValueCreated)
            foreach (var probe in _replicaProbes.Value) probe.Dispose();
        _direct?.Dispose();
        _writesRoot?.Dispose();
        _root.Dispose();
    }
}

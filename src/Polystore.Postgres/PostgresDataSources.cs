using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Polystore.Core.Configuration;

namespace Polystore.Postgres;

/// <summary>
/// The pooled connections described by postgresql.yaml: writes go to the primary, reads to a
/// standby (round robin) when replicas are configured, else to the primary. Dispose once at shutdown.
/// </summary>
public sealed class PostgresDataSources : IAsyncDisposable, IDisposable
{
    private readonly NpgsqlDataSource _root;
    private readonly bool _prePing;
    private readonly Lazy<IReadOnlyList<NpgsqlDataSource>> _replicaProbes;
    private readonly ILogger _logger;

    // The logger factory each data source was built with, so that Polystore code handed only an NpgsqlDataSource
    // (a bulk upsert, say) logs where the application's other messages go.
    private static readonly ConditionalWeakTable<NpgsqlDataSource, ILoggerFactory> LoggerFactories = new();

    private PostgresDataSources(NpgsqlDataSource root, NpgsqlDataSource primary, NpgsqlDataSource reads, PostgresSettings settings, ILoggerFactory? loggerFactory)
    {
        _root = root;
        Primary = primary;
        Reads = reads;
        Settings = settings;
        _prePing = settings.Pool.PoolPrePing;
        _logger = loggerFactory?.CreateLogger(PostgresLog.DataSourcesCategory) ?? NullLogger.Instance;
        if (loggerFactory is not null)
            foreach (var source in new[] { root, primary, reads }) LoggerFactories.AddOrUpdate(source, loggerFactory);
        // Spans name the server: the configured primary for writes; reads spread over several servers name none.
        if (!ReferenceEquals(primary, reads)) PostgresTelemetry.Describe(primary, settings.Connection.Database, settings.Connection.Host, settings.Connection.Port);
        _replicaProbes = new(() => [.. settings.Replication.ReadReplicas.Select(r => BuildProbe(settings, r.Host, r.Port, loggerFactory))]);
    }

    /// <summary>The settings these data sources were built from.</summary>
    public PostgresSettings Settings { get; }

    /// <summary>Connections to the primary: use for writes and for reads that must see them.</summary>
    public NpgsqlDataSource Primary { get; }

    /// <summary>Connections for reads: a standby when one is up (round robin), else the primary.</summary>
    public NpgsqlDataSource Reads { get; }

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
        var builder = new NpgsqlDataSourceBuilder(PostgresDriverSettings.Build(settings).ConnectionString);
        builder.Name = settings.Connection.ApplicationName;
        if (loggerFactory is not null) builder.UseLoggerFactory(loggerFactory);
        configure?.Invoke(builder);
        if (settings.Replication.ReadReplicas.Count == 0)
        {
            var single = builder.Build();
            return new PostgresDataSources(single, single, single, settings, loggerFactory);
        }
        var multi = builder.BuildMultiHost();
        return new PostgresDataSources(multi,
            multi.WithTargetSession(TargetSessionAttributes.Primary),
            multi.WithTargetSession(TargetSessionAttributes.PreferStandby),
            settings, loggerFactory);
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
    public ValueTask<NpgsqlConnection> OpenReadConnectionAsync(CancellationToken cancellationToken = default) =>
        OpenAsync(Reads, cancellationToken);

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
            _logger.PrePingFailed(e, connection.Host, connection.Port);
            NpgsqlConnection.ClearPool(connection);
            await connection.DisposeAsync().ConfigureAwait(false);
            return await PostgresPool.OpenAsync(source, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_replicaProbes.IsValueCreated)
            foreach (var probe in _replicaProbes.Value) await probe.DisposeAsync().ConfigureAwait(false);
        await _root.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_replicaProbes.IsValueCreated)
            foreach (var probe in _replicaProbes.Value) probe.Dispose();
        _root.Dispose();
    }
}

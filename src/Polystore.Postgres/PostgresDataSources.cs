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

    private PostgresDataSources(NpgsqlDataSource root, NpgsqlDataSource primary, NpgsqlDataSource reads, PostgresSettings settings)
    {
        _root = root;
        Primary = primary;
        Reads = reads;
        Settings = settings;
        _prePing = settings.Pool.PoolPrePing;
    }

    /// <summary>The settings these data sources were built from.</summary>
    public PostgresSettings Settings { get; }

    /// <summary>Connections to the primary: use for writes and for reads that must see them.</summary>
    public NpgsqlDataSource Primary { get; }

    /// <summary>Connections for reads: a standby when one is up (round robin), else the primary.</summary>
    public NpgsqlDataSource Reads { get; }

    /// <summary>Builds the data sources; nothing connects until the first open.</summary>
    /// <param name="settings">postgresql.yaml.</param>
    /// <param name="configure">Optional extra Npgsql setup (type mappings, logging).</param>
    public static PostgresDataSources Create(PostgresSettings settings, Action<NpgsqlDataSourceBuilder>? configure = null)
    {
        var builder = new NpgsqlDataSourceBuilder(PostgresDriverSettings.Build(settings).ConnectionString);
        builder.Name = settings.Connection.ApplicationName;
        configure?.Invoke(builder);
        if (settings.Replication.ReadReplicas.Count == 0)
        {
            var single = builder.Build();
            return new PostgresDataSources(single, single, single, settings);
        }
        var multi = builder.BuildMultiHost();
        return new PostgresDataSources(multi,
            multi.WithTargetSession(TargetSessionAttributes.Primary),
            multi.WithTargetSession(TargetSessionAttributes.PreferStandby),
            settings);
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
        catch (NpgsqlException) when (!cancellationToken.IsCancellationRequested)
        {
            // The server restarted or the socket died while pooled: drop every pooled connection, retry once.
            NpgsqlConnection.ClearPool(connection);
            await connection.DisposeAsync().ConfigureAwait(false);
            return await PostgresPool.OpenAsync(source, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _root.DisposeAsync();

    /// <inheritdoc />
    public void Dispose() => _root.Dispose();
}

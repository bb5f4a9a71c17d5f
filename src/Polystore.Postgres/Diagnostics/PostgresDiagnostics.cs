using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore.Postgres.Diagnostics;

/// <summary>
/// The PostgreSQL checks of <c>polystore doctor</c>. Each check opens its own connection to the
/// primary (and, for replication, to each configured replica), so they run concurrently and one
/// slow or failing check never holds up another. Works as a non-superuser in <c>pg_monitor</c> and
/// reports what such a role could not see. Dispose to close the connections.
/// </summary>
public sealed class PostgresDiagnostics : IStoreDiagnostics
{
    /// <summary>The store name on every finding.</summary>
    public const string Store = StoreNames.Postgres;

    string IStoreDiagnostics.Store => Store;

    private readonly PostgresContext _context;

    /// <summary>Prepares the checks; nothing connects until a check runs.</summary>
    /// <param name="settings">postgresql.yaml.</param>
    /// <param name="options">Thresholds; null = the defaults.</param>
    /// <param name="applicationPool">The application's own pool, whose saturation the pool check reports; null = what this process and the server show.</param>
    public PostgresDiagnostics(PostgresSettings settings, PostgresDiagnosticOptions? options = null, NpgsqlDataSource? applicationPool = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _context = new PostgresContext(settings, options ?? new PostgresDiagnosticOptions(), applicationPool);
    }

    /// <summary>Values to mask in anything printed (the password).</summary>
    public IReadOnlyList<string?> Secrets => _context.Secrets;

    /// <summary>Every PostgreSQL check, ready for <see cref="DiagnosticRunner"/>.</summary>
    public IReadOnlyList<DiagnosticCheck> Checks =>
    [
        Check("postgres.access", PostgresAccessCheck.RunAsync),
        Check("postgres.connections", PostgresActivityChecks.ConnectionsAsync),
        Check("postgres.idle_in_transaction", PostgresActivityChecks.IdleInTransactionAsync),
        Check("postgres.pool", PostgresPoolCheck.RunAsync),
        Check("postgres.long_running", PostgresActivityChecks.LongRunningAsync),
        Check("postgres.xmin_horizon", PostgresHorizonCheck.RunAsync),
        Check("postgres.blocked", PostgresActivityChecks.BlockedAsync),
        Check("postgres.slow_queries", PostgresStatementsCheck.RunAsync),
        Check("postgres.unused_indexes", PostgresIndexChecks.UnusedAsync),
        Check("postgres.duplicate_indexes", PostgresIndexChecks.DuplicateAsync),
        Check("postgres.invalid_indexes", PostgresIndexChecks.InvalidAsync),
        Check("postgres.seq_scans", PostgresTableChecks.SeqScansAsync),
        Check("postgres.stale_statistics", PostgresTableChecks.StaleStatisticsAsync),
        Check("postgres.cache_hit", PostgresTableChecks.CacheHitAsync),
        Check("postgres.sequences", PostgresServerChecks.SequencesAsync),
        Check("postgres.wraparound", PostgresServerChecks.WraparoundAsync),
        Check("postgres.replication", PostgresServerChecks.ReplicationAsync),
        Check("postgres.tls", PostgresTlsCheck.RunAsync),
    ];

    private DiagnosticCheck Check(string name, Func<PostgresContext, CancellationToken, Task<IReadOnlyList<Finding>>> run) =>
        new(Store, name, ct => run(_context, ct));

    /// <summary>
    /// Runs <c>EXPLAIN (ANALYZE, BUFFERS)</c> on one statement inside a transaction that is always rolled back and,
    /// unless <paramref name="allowWrites"/>, read-only: the server refuses INSERT, UPDATE, DELETE and MERGE before
    /// they run (not every utility statement, which is one reason the rollback is unconditional). The text is
    /// never split or rewritten here: it goes to the server as one extended-protocol statement, which PostgreSQL
    /// refuses when it holds more than one, so no quoting trick can smuggle a COMMIT past the rollback.
    /// </summary>
    /// <param name="sql">One SQL statement (a trailing semicolon is allowed).</param>
    /// <param name="allowWrites">Measure an INSERT, UPDATE or DELETE for real (still rolled back).</param>
    /// <param name="statementTimeout">Longest the statement may run (default 60 s).</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    /// <returns>The plan, one line per element.</returns>
    /// <exception cref="ArgumentException">The text is empty or longer than 1 MiB.</exception>
    /// <exception cref="PostgresException">The server refused the statement (42601 for more than one, 25006 for a write when read-only).</exception>
    public async Task<IReadOnlyList<string>> ExplainAsync(string sql, bool allowWrites = false, TimeSpan? statementTimeout = null, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrWhiteSpace(sql)) throw new ArgumentException("explain needs one SQL statement; the text is empty", nameof(sql));
        if (sql.Length > 1024 * 1024) throw new ArgumentException("explain: the statement is longer than 1 MiB", nameof(sql));
        var timeout = statementTimeout ?? TimeSpan.FromSeconds(60);
        if (timeout <= TimeSpan.Zero || timeout > TimeSpan.FromDays(1)) throw new ArgumentOutOfRangeException(nameof(statementTimeout), timeout, "must be positive and at most a day");
        var connection = await _context.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                try
                {
                    if (!allowWrites)
                    {
                        var readOnly = new NpgsqlCommand("SET TRANSACTION READ ONLY", connection, transaction);
                        await using (readOnly.ConfigureAwait(false))
                            await readOnly.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }
                    var setup = new NpgsqlCommand("SELECT set_config('statement_timeout', $1, true)", connection, transaction);
                    await using (setup.ConfigureAwait(false))
                    {
                        setup.Parameters.Add(new NpgsqlParameter { Value = ((long)timeout.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) });
                        await setup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }
                    // A batch command is sent as written: Npgsql neither splits it on semicolons nor rewrites it.
                    var batch = new NpgsqlBatch(connection, transaction) { BatchCommands = { new NpgsqlBatchCommand("EXPLAIN (ANALYZE, BUFFERS) " + sql) } };
                    var lines = new List<string>();
                    await using (batch.ConfigureAwait(false))
                    {
                        var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                        await using (reader.ConfigureAwait(false))
                            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                                lines.Add(reader.GetString(0));
                    }
                    return lines;
                }
                finally
                {
                    // Never commit: EXPLAIN ANALYZE executes the statement. (A broken connection rolls back on the server.)
                    try { await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false); }
                    catch (Exception e) when (e is NpgsqlException or InvalidOperationException) { }
                }
            }
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _context.DisposeAsync();
}

/// <summary>What every PostgreSQL check shares: the doctor's own small pool to the primary, options, and secrets.</summary>
internal sealed class PostgresContext : IAsyncDisposable
{
    private readonly Lazy<NpgsqlDataSource> _primary;
    private readonly List<NpgsqlDataSource> _replicas = [];
    private readonly Lock _gate = new();

    public PostgresContext(PostgresSettings settings, PostgresDiagnosticOptions options, NpgsqlDataSource? applicationPool)
    {
        Settings = settings;
        Options = options;
        ApplicationPool = applicationPool;
        Secrets = [settings.Connection.Password];
        _primary = new Lazy<NpgsqlDataSource>(() => settings.Connection.Hosts.Count == 0 ? Build(settings.Connection.Host, settings.Connection.Port) : BuildPrimaryOfHosts());
    }

    public PostgresSettings Settings { get; }
    public PostgresDiagnosticOptions Options { get; }
    public NpgsqlDataSource? ApplicationPool { get; }
    public IReadOnlyList<string?> Secrets { get; }
    public int Limit => Math.Max(1, Options.MaxFindingsPerCheck);
    public string[]? Schemas => Options.Schemas is { Count: > 0 } s ? [.. s] : null;

    /// <summary>The primary only (never a replica), a small pool of its own, a short connect timeout.</summary>
    public string ConnectionString(string host, int port)
    {
        var b = PostgresDriverSettings.Build(Settings);
        b.Host = host;
        b.Port = port;
        b.LoadBalanceHosts = false;
        b.MinPoolSize = 0;
        b.MaxPoolSize = 8;
        b.MaxAutoPrepare = 0;
        b.Timeout = Math.Clamp(b.Timeout, 1, 10);
        b.ApplicationName = "polystore doctor";
        return b.ConnectionString;
    }

    /// <summary>The pool name of the doctor's own data sources, which the pool check leaves out.</summary>
    public const string PoolName = "polystore-doctor";

    private NpgsqlDataSource Build(string host, int port) =>
        new NpgsqlDataSourceBuilder(ConnectionString(host, port)) { Name = PoolName }.Build();

    /// <summary>connection.hosts: whichever of them is the primary now (Npgsql asks each server).</summary>
    private NpgsqlDataSource BuildPrimaryOfHosts()
    {
        var b = new NpgsqlConnectionStringBuilder(ConnectionString(Settings.Connection.Host, Settings.Connection.Port))
        {
            Host = PostgresDriverSettings.Build(Settings).Host,
        };
        _hostsRoot = new NpgsqlDataSourceBuilder(b.ConnectionString) { Name = PoolName }.BuildMultiHost();
        return _hostsRoot.WithTargetSession(TargetSessionAttributes.Primary);
    }

    private NpgsqlMultiHostDataSource? _hostsRoot;

    public ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken) => _primary.Value.OpenConnectionAsync(cancellationToken);

    public NpgsqlDataSource Replica(string host, int port)
    {
        var source = Build(host, port);
        lock (_gate) _replicas.Add(source);
        return source;
    }

    public string Snippet(string? text, int max = 200) => FindingText.Snippet(text, Secrets, max);

    public Finding Finding(string check, Severity severity, string title, IReadOnlyDictionary<string, string> evidence, string? remedy = null) =>
        new(PostgresDiagnostics.Store, check, severity, title, evidence, remedy);

    public async Task<List<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken, params object?[] parameters)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
            return await QueryAsync(connection, sql, map, cancellationToken, parameters).ConfigureAwait(false);
    }

    public static async Task<List<T>> QueryAsync<T>(NpgsqlConnection connection, string sql, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken, params object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        await using (command.ConfigureAwait(false))
        {
            foreach (var p in parameters) command.Parameters.Add(p is NpgsqlParameter np ? np : new NpgsqlParameter { Value = p ?? DBNull.Value });
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                var rows = new List<T>();
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) rows.Add(map(reader));
                return rows;
            }
        }
    }

    /// <summary>The schema filter as a parameter that is NULL when every schema is wanted.</summary>
    public NpgsqlParameter SchemaParameter() => new() { Value = (object?)Schemas ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text };

    public async ValueTask DisposeAsync()
    {
        if (_primary.IsValueCreated) await _primary.Value.DisposeAsync().ConfigureAwait(false);
        if (_hostsRoot is not null) await _hostsRoot.DisposeAsync().ConfigureAwait(false);
        List<NpgsqlDataSource> replicas;
        lock (_gate) replicas = [.. _replicas];
        foreach (var r in replicas) await r.DisposeAsync().ConfigureAwait(false);
    }
}

internal static class ReaderExtensions
{
    public static string? Str(this NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetValue(i).ToString();
    public static long Long(this NpgsqlDataReader r, int i) => r.IsDBNull(i) ? 0 : Convert.ToInt64(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
    public static long? LongOrNull(this NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : Convert.ToInt64(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
    public static double Dbl(this NpgsqlDataReader r, int i) => r.IsDBNull(i) ? 0 : Convert.ToDouble(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
    public static double? DblOrNull(this NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : Convert.ToDouble(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
    public static bool Bool(this NpgsqlDataReader r, int i) => !r.IsDBNull(i) && r.GetBoolean(i);
    public static DateTime? Time(this NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetDateTime(i);
}

using System.Diagnostics;
using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A reusable bulk upsert (build it once with <see cref="PostgresBulkUpsert.Into{T}"/>). Each call checks the table,
/// columns, types and conflict target against the catalog (read once per table, then confirmed by a fingerprint check
/// sent with the call's first statement, and read again when the table changed); then a batch of up to
/// <see cref="PostgresBulkUpsertOptions.UnnestThreshold"/> rows goes as arrays through <c>unnest</c> in one round
/// trip, and a larger one streams with binary COPY into a temporary table (ON COMMIT DROP). One statement applies
/// the batch: on PostgreSQL 15+, for a plain table without triggers or rules and SET expressions that need no
/// <c>EXCLUDED</c>, a <c>MERGE</c> under a savepoint (rolled back and replaced by <c>INSERT … ON CONFLICT … DO UPDATE</c>
/// when a concurrent insert of a key makes it fail); elsewhere <c>INSERT … ON CONFLICT … DO UPDATE</c> (or DO NOTHING).
/// <see cref="PostgresBulkUpsertOptions.Mode"/> decides the transactions: one, one per chunk, or chunks over several connections.
/// </summary>
/// <remarks>
/// <para>Failures: before the first row is read (arguments, options, the catalog check, opening connections) the
/// exception is thrown as it is and nothing was written. From then on every failure is a
/// <see cref="PostgresBulkUpsertException"/> and every cancellation a <see cref="PostgresBulkUpsertCanceledException"/>
/// (an <see cref="OperationCanceledException"/>), both carrying the rows committed so far
/// (<see cref="PostgresBulkUpsertException.RowsCommitted"/>) and the cause as the inner exception. A COMMIT is never
/// cancelled halfway; when the connection is lost during one, the server is asked afterwards how it ended, and only
/// if it cannot be asked are its rows reported in doubt (<see cref="PostgresBulkUpsertException.RowsInDoubt"/>).
/// The statements that move rows run under <see cref="PostgresBulkUpsertOptions.CommandTimeout"/> (no limit by
/// default), not the connection's command_timeout.</para>
/// <para>Duplicate conflict keys within one batch: the last row in sequence order wins (PostgreSQL alone
/// would fail with "ON CONFLICT DO UPDATE command cannot affect row a second time"). With no update
/// columns (DO NOTHING) the existing row wins, and among new duplicates the last one is inserted.
/// Index needed: the unique index or primary key on exactly the conflict columns.</para>
/// </remarks>
public sealed class PostgresBulkUpsertDefinition<T>
{
    internal PostgresBulkUpsertDefinition(string table, UpsertColumn<T>[] columns, string[] conflict, string[] update, SetExpression[] set)
    {
        TableName = table;
        Columns = columns;
        ConflictColumns = conflict;
        UpdateColumns = update;
        SetExpressions = set;
    }

    /// <summary>The table as the caller named it.</summary>
    public string TableName { get; }

    /// <summary>The conflict target.</summary>
    public IReadOnlyList<string> ConflictColumns { get; }

    /// <summary>Columns overwritten from the incoming row on conflict.</summary>
    public IReadOnlyList<string> UpdateColumns { get; }

    /// <summary>Extra assignments on conflict.</summary>
    public IReadOnlyList<SetExpression> SetExpressions { get; }

    /// <summary>The mapped columns, in the order they were given.</summary>
    internal IReadOnlyList<UpsertColumn<T>> Columns { get; }

    /// <summary>Upserts <paramref name="rows"/> through connections of <paramref name="dataSource"/> (the primary).</summary>
    public Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlDataSource dataSource, IEnumerable<T> rows, PostgresBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return ExecuteAsync(dataSource, new SyncRows<T>(rows), options, cancellationToken);
    }

    /// <summary>Upserts a stream of rows, read once and never held in memory whole (parallel mode holds up to three chunks per connection).</summary>
    public async Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlDataSource dataSource, IAsyncEnumerable<T> rows, PostgresBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(rows);
        options ??= PostgresBulkUpsertOptions.Default;
        options.Validate();
        if (options.LoggerFactory is null && PostgresDataSources.LoggerFactoryOf(dataSource) is { } loggerFactory) options = options with { LoggerFactory = loggerFactory };
        var watch = Stopwatch.StartNew();
        using var activity = StartActivity(options.Mode, dataSource, null);
        var progress = new UpsertProgress(TableName);
        try
        {
            var enumerator = rows.GetAsyncEnumerator(cancellationToken);
            await using (enumerator.ConfigureAwait(false))
            {
                var (received, inserted, updated, commits) = options.Mode switch
                {
                    PostgresBulkUpsertMode.Parallel => await ParallelUpsert<T>.RunAsync(this, dataSource, enumerator, options, progress, cancellationToken).ConfigureAwait(false),
                    PostgresBulkUpsertMode.Chunked => await ChunkedUpsert<T>.RunAsync(this, dataSource, enumerator, options, progress, cancellationToken).ConfigureAwait(false),
                    _ => await AtomicUpsert<T>.RunAsync(this, dataSource, enumerator, options, progress, cancellationToken).ConfigureAwait(false),
                };
                var result = new PostgresBulkUpsertResult(received, inserted, updated, commits, watch.Elapsed);
                Succeeded(activity, options.Mode, result, progress.Techniques, watch);
                return result;
            }
        }
        catch (Exception e)
        {
            Failed(activity, options.Mode, progress, e, watch);
            throw;
        }
    }

    /// <summary>
    /// Upserts inside the caller's transaction (for example with an outbox row): nothing is committed
    /// here, and a failure (a <see cref="PostgresBulkUpsertException"/> from the server's first answer on, or
    /// <see cref="PostgresBulkUpsertCanceledException"/> on cancellation once rows are being read) leaves the transaction
    /// for the caller to roll back.
    /// </summary>
    /// <param name="connection">The caller's open connection.</param>
    /// <param name="transaction">The caller's transaction on <paramref name="connection"/>.</param>
    /// <param name="rows">The rows, read once.</param>
    /// <param name="options">
    /// <see cref="PostgresBulkUpsertOptions.UnnestThreshold"/>, <see cref="PostgresBulkUpsertOptions.MergeHashMemoryBytes"/> and
    /// <see cref="PostgresBulkUpsertOptions.CommandTimeout"/> apply as elsewhere; the options about commits cannot apply in one
    /// transaction the caller owns.
    /// </param>
    /// <param name="cancellationToken">Cancels the upsert.</param>
    /// <exception cref="ArgumentException">
    /// <paramref name="transaction"/> is completed or belongs to another connection, or <paramref name="connection"/> is not open;
    /// or <see cref="PostgresBulkUpsertOptions.Mode"/> is not <see cref="PostgresBulkUpsertMode.Atomic"/>, or
    /// <see cref="PostgresBulkUpsertOptions.ChunkSize"/> or <see cref="PostgresBulkUpsertOptions.Parallelism"/> is not its default
    /// (the exception's parameter name is the option's).
    /// </exception>
    public async Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IAsyncEnumerable<T> rows,
        PostgresBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(rows);
        if (connection.State != System.Data.ConnectionState.Open)
            throw new ArgumentException($"the connection is {connection.State}; open it and begin the transaction on it first.", nameof(connection));
        if (!ReferenceEquals(transaction.Connection, connection))
            throw new ArgumentException("the transaction belongs to another connection; pass the connection it was begun on.", nameof(transaction));
        try
        {
            // Npgsql checks a command's transaction when it is given one; nothing is sent.
            using var probe = new NpgsqlCommand(null, connection, transaction);
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"the transaction cannot be used: {e.Message}; begin a new one.", nameof(transaction), e);
        }
        options ??= PostgresBulkUpsertOptions.Default;
        options.ValidateInsideTransaction();
        var watch = Stopwatch.StartNew();
        using var activity = StartActivity(null, null, connection);
        try
        {
            var plan = await UpsertFailure.PlanAsync(UpsertPlanResolver.ResolveAsync(this, connection, transaction, cancellationToken),
                null, TableName, new UpsertProgress(TableName), options, cancellationToken).ConfigureAwait(false);
            var enumerator = rows.GetAsyncEnumerator(cancellationToken);
            await using (enumerator.ConfigureAwait(false))
            {
                try
                {
                    var (received, inserted, updated, technique) = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, enumerator, options, long.MaxValue, UpsertFirstTrip.None, cancellationToken).ConfigureAwait(false);
                    // Counted now: the caller owns the commit.
                    PostgresTelemetry.RecordRows(TableName, technique, received, inserted, updated);
                    var result = new PostgresBulkUpsertResult(received, inserted, updated, 0, watch.Elapsed);
                    Succeeded(activity, null, result, technique, watch);
                    return result;
                }
                catch (Exception e)
                {
                    UpsertTableCache.ForgetOnSchemaError(plan.Info.Key, e);
                    throw UpsertFailure.Create(null, plan.Table.DisplayName, new UpsertProgress(TableName), e, options, cancellationToken);
                }
            }
        }
        catch (Exception e)
        {
            Failed(activity, null, null, e, watch);
            throw;
        }
    }

    /// <summary>
    /// For a collection in memory too large for the unnest path, starts proving its conflict keys unique while the
    /// connection opens and the catalog is checked. The key columns are taken by name here; the staged COPY uses the
    /// proof only if the catalog check maps the same columns, and hashes again otherwise.
    /// </summary>
    internal void StartKeyProof(IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options)
    {
        if (rows is not ListRows<T> { InMemory: { } all } list || all.Count <= options.UnnestThreshold) return;
        var keys = Columns.Where(c => ConflictColumns.Contains(c.Name, StringComparer.OrdinalIgnoreCase)).ToArray();
        if (keys.Length == ConflictColumns.Count) list.StartKeyProof(keys);
    }

    private Activity? StartActivity(PostgresBulkUpsertMode? mode, NpgsqlDataSource? dataSource, NpgsqlConnection? connection)
    {
        var activity = PostgresTelemetry.Start("bulk_upsert", TableName, dataSource, connection);
        activity?.SetTag("polystore.bulk_upsert.mode", PostgresTelemetry.ModeName(mode));
        return activity;
    }

    private void Succeeded(Activity? activity, PostgresBulkUpsertMode? mode, PostgresBulkUpsertResult result, UpsertTechniques techniques, Stopwatch watch)
    {
        PostgresTelemetry.RecordDuration(PostgresTelemetry.BulkUpsertSeconds, watch.Elapsed, TableName, Mode(mode), null);
        if (activity is not { IsAllDataRequested: true }) return;
        activity.SetTag("polystore.bulk_upsert.technique", PostgresTelemetry.TechniqueName(techniques));
        activity.SetTag("polystore.bulk_upsert.rows", result.RowsReceived);
        activity.SetTag("polystore.bulk_upsert.inserted", result.Inserted);
        activity.SetTag("polystore.bulk_upsert.updated", result.Updated);
        activity.SetTag("polystore.bulk_upsert.commits", result.Commits);
    }

    private void Failed(Activity? activity, PostgresBulkUpsertMode? mode, UpsertProgress? progress, Exception e, Stopwatch watch)
    {
        PostgresTelemetry.RecordDuration(PostgresTelemetry.BulkUpsertSeconds, watch.Elapsed, TableName, Mode(mode), e);
        if (activity is null) return;
        PostgresTelemetry.Fail(activity, e);
        if (progress is null || !activity.IsAllDataRequested) return;
        // What stays committed although the call failed (chunked and parallel modes).
        activity.SetTag("polystore.bulk_upsert.technique", PostgresTelemetry.TechniqueName(progress.Techniques));
        activity.SetTag("polystore.bulk_upsert.inserted", progress.Inserted);
        activity.SetTag("polystore.bulk_upsert.updated", progress.Updated);
        activity.SetTag("polystore.bulk_upsert.commits", progress.Commits);
    }

    private static KeyValuePair<string, object?> Mode(PostgresBulkUpsertMode? mode) => new("mode", PostgresTelemetry.ModeName(mode));

    /// <summary>Upserts inside the caller's transaction; see the <see cref="IAsyncEnumerable{T}"/> overload.</summary>
    public Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IEnumerable<T> rows,
        PostgresBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return ExecuteAsync(connection, transaction, new SyncRows<T>(rows), options, cancellationToken);
    }
}

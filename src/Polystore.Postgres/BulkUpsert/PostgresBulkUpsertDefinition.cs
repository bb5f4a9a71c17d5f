using System.Diagnostics;
using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A reusable bulk upsert (build it once with <see cref="PostgresBulkUpsert.Into{T}"/>). Each call checks the
/// table, columns, types and conflict target against the catalog first, then streams the rows with
/// binary COPY into a temporary table (ON COMMIT DROP) and runs one
/// <c>INSERT … SELECT … ON CONFLICT … DO UPDATE</c>; batches up to
/// <see cref="PostgresBulkUpsertOptions.UnnestThreshold"/> rows go as arrays through <c>unnest</c> in one round trip.
/// </summary>
/// <remarks>
/// Duplicate conflict keys within one batch: the last row in sequence order wins (PostgreSQL alone
/// would fail with "ON CONFLICT DO UPDATE command cannot affect row a second time"). With no update
/// columns (DO NOTHING) the existing row wins, and among new duplicates the last one is inserted.
/// Index needed: the unique index or primary key on exactly the conflict columns.
/// </remarks>
public sealed class PostgresBulkUpsertDefinition<T>
{
    private readonly UpsertColumn<T>[] _columns;

    internal PostgresBulkUpsertDefinition(string table, UpsertColumn<T>[] columns, string[] conflict, string[] update, SetExpression[] set)
    {
        TableName = table;
        _columns = columns;
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

    /// <summary>Upserts <paramref name="rows"/> through connections of <paramref name="dataSource"/> (the primary).</summary>
    public Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlDataSource dataSource, IEnumerable<T> rows, PostgresBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return ExecuteAsync(dataSource, new SyncRows(rows), options, cancellationToken);
    }

    /// <summary>Upserts a stream of rows, read once and never held in memory whole (parallel mode holds up to three chunks per connection).</summary>
    public async Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlDataSource dataSource, IAsyncEnumerable<T> rows, PostgresBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(rows);
        options ??= PostgresBulkUpsertOptions.Default;
        options.Validate();
        var watch = Stopwatch.StartNew();
        var enumerator = rows.GetAsyncEnumerator(cancellationToken);
        await using (enumerator.ConfigureAwait(false))
        {
            if (options.Mode == PostgresBulkUpsertMode.Parallel) return await ParallelAsync(dataSource, enumerator, options, watch, cancellationToken).ConfigureAwait(false);

            var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                if (options.Mode == PostgresBulkUpsertMode.Atomic)
                {
                    var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                    await using (transaction.ConfigureAwait(false))
                    {
                        var plan = await ResolveAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                        try
                        {
                            var (received, inserted, updated) = await UpsertAllAsync(connection, transaction, plan, enumerator, options, long.MaxValue, cancellationToken).ConfigureAwait(false);
                            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                            return new PostgresBulkUpsertResult(received, inserted, updated, 1, watch.Elapsed);
                        }
                        catch (PostgresException e)
                        {
                            throw new PostgresBulkUpsertException($"bulk upsert into {plan.Table.DisplayName} failed; nothing was written (the transaction was rolled back): {e.MessageText}", 0, e);
                        }
                    }
                }
                return await ChunkedAsync(connection, enumerator, options, watch, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Upserts inside the caller's transaction (for example with an outbox row): nothing is committed
    /// here, and a failure leaves the transaction for the caller to roll back.
    /// </summary>
    public async Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IAsyncEnumerable<T> rows, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(rows);
        var watch = Stopwatch.StartNew();
        var plan = await ResolveAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        var enumerator = rows.GetAsyncEnumerator(cancellationToken);
        await using (enumerator.ConfigureAwait(false))
        {
            var (received, inserted, updated) = await UpsertAllAsync(connection, transaction, plan, enumerator, PostgresBulkUpsertOptions.Default, long.MaxValue, cancellationToken).ConfigureAwait(false);
            return new PostgresBulkUpsertResult(received, inserted, updated, 0, watch.Elapsed);
        }
    }

    /// <summary>Upserts inside the caller's transaction; see the <see cref="IAsyncEnumerable{T}"/> overload.</summary>
    public Task<PostgresBulkUpsertResult> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IEnumerable<T> rows, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return ExecuteAsync(connection, transaction, new SyncRows(rows), cancellationToken);
    }

    /// <summary>Checks every name and type against the catalog; throws <see cref="PostgresSchemaException"/> before any row is sent.</summary>
    internal async Task<PostgresBulkUpsertPlan<T>> ResolveAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        var table = await TableSchema.LoadAsync(connection, TableName, transaction, cancellationToken).ConfigureAwait(false);
        var columns = new List<(UpsertColumn<T>, ColumnSchema)>();
        foreach (var map in _columns)
        {
            var column = table.Column(map.Name, "bulk upsert column");
            if (column.Name == PostgresBulkUpsertPlan<T>.OrdinalColumn) throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column name \"{column.Name}\" is reserved for the staging table.");
            if (column.Generated) throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column \"{column.Name}\" is generated and cannot be written.");
            if (column.IdentityAlways) throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column \"{column.Name}\" is GENERATED ALWAYS AS IDENTITY and cannot be written.");
            if (TypeCompatibility.Check(map.ValueType, column) is { } problem)
                throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column \"{column.Name}\": {problem}.");
            columns.Add((map, column));
        }
        var conflict = ConflictColumns.Select(c => table.Column(c, "conflict column")).ToList();
        if (!table.HasUniqueIndexOn(conflict))
            throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: no unique index or primary key on exactly ({string.Join(", ", conflict.Select(c => c.Name))}); ON CONFLICT needs one. Create it, e.g. CREATE UNIQUE INDEX ON {table.QualifiedName} ({string.Join(", ", conflict.Select(c => PostgresIdentifier.Quote(c.Name)))}).");
        var update = UpdateColumns.Select(c => table.Column(c, "update column")).ToList();
        var set = SetExpressions.Select(s => (s, table.Column(s.Column, "SET expression column"))).ToList();
        // A trigger (other than a foreign key's own checks on another table) or a rule could write the table
        // too, and a partitioned table keeps its counters per partition: those count with RETURNING instead.
        var countable = await Sql.QueryAsync(connection, transaction, """
            SELECT c.relkind = 'r' AND NOT c.relhasrules AND pg_catalog.current_setting('track_counts')::bool
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND (NOT g.tgisinternal OR g.tgconstrrelid = c.oid))
            FROM pg_catalog.pg_class c WHERE c.oid = $1
            """, [new NpgsqlParameter<uint> { TypedValue = table.Oid, NpgsqlDbType = NpgsqlDbType.Oid }], r => r.GetBoolean(0), cancellationToken).ConfigureAwait(false);
        return new PostgresBulkUpsertPlan<T>(table, columns, conflict, update, set, countable is [true], mergeAvailable: connection.PostgreSqlVersion.Major >= 15);
    }

    /// <summary>Upserts up to <paramref name="limit"/> rows of the enumerator in the current transaction.</summary>
    private static async Task<(long Received, long Inserted, long Updated)> UpsertAllAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, long limit, CancellationToken cancellationToken)
    {
        // Small batches: one round trip with arrays beats creating a temp table and a COPY.
        var head = new List<T>(Math.Min(options.UnnestThreshold + 1, 4096));
        var more = true;
        while (head.Count <= options.UnnestThreshold && head.Count < limit && (more = await rows.MoveNextAsync().ConfigureAwait(false)))
            head.Add(rows.Current);
        if (!more || head.Count >= limit)
        {
            if (head.Count == 0) return (0, 0, 0);
            if (head.Count <= options.UnnestThreshold)
            {
                var (i, u) = await UpsertArraysAsync(connection, transaction, plan, head, cancellationToken).ConfigureAwait(false);
                return (head.Count, i, u);
            }
        }

        await ExecuteAsync(connection, transaction, plan.CreateStaging, cancellationToken).ConfigureAwait(false);
        long received = 0;
        // A batch already in memory is hashed before it is sent: when its keys are proven unique, the rows
        // need no ordinal (it only orders duplicates), which makes the COPY about a fifth lighter.
        var provenUnique = rows is ListRows { InMemory: { } all } list && (list.KeysUnique ??= KeyTracker.Unique(plan.KeyColumns, all));
        var keys = provenUnique ? null : new KeyTracker(plan.KeyColumns);
        var importer = await connection.BeginBinaryImportAsync(provenUnique ? plan.CopyWithoutOrdinal : plan.Copy, cancellationToken).ConfigureAwait(false);
        await using (importer.ConfigureAwait(false))
        {
            foreach (var row in head)
            {
                keys?.Add(row);
                await WriteRowAsync(importer, plan, row, keys is null ? null : received + 1, cancellationToken).ConfigureAwait(false);
                received++;
            }
            while (more && received < limit && await rows.MoveNextAsync().ConfigureAwait(false))
            {
                keys?.Add(rows.Current);
                await WriteRowAsync(importer, plan, rows.Current, keys is null ? null : received + 1, cancellationToken).ConfigureAwait(false);
                received++;
            }
            await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        var (inserted, updated) = await UpsertFromStagingAsync(connection, transaction, plan, keys?.CertainlyUnique ?? true, (received, options.MergeHashMemoryBytes), cancellationToken).ConfigureAwait(false);
        return (received, inserted, updated);
    }

    // The token is checked once per row rather than handed to every value write: Npgsql registers a
    // cancellation callback per call with a cancellable token, which measured ~30% slower COPY streaming.
    private static async Task WriteRowAsync(NpgsqlBinaryImporter importer, PostgresBulkUpsertPlan<T> plan, T row, long? ordinal, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await importer.StartRowAsync(CancellationToken.None).ConfigureAwait(false);
        if (ordinal is { } o) await importer.WriteAsync(o, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
        var columns = plan.Columns;
        for (var i = 0; i < columns.Count; i++)
            await columns[i].Map.WriteAsync(importer, row, columns[i].Column.WriteTypeName, CancellationToken.None).ConfigureAwait(false);
    }

    // De-duplicating (DISTINCT ON, last one wins) needs a sort of the whole batch, so it is paid only when
    // a key repeats. While streaming, 64-bit key hashes prove most batches unique for free; only on a hash
    // collision (or past the tracking cap) does a server-side hash aggregate decide. Measured on 100k rows:
    // that check ~0.13 s, the sort ~0.5 s; a savepoint + retry on error 21000 was slower than both.
    private static async Task<(long Inserted, long Updated)> UpsertFromStagingAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        bool certainlyUnique, (long Rows, long MemoryCap) hash, CancellationToken cancellationToken)
    {
        var duplicates = plan.DoNothing;
        if (!duplicates && !certainlyUnique)
        {
            var check = new NpgsqlCommand(plan.HasDuplicates, connection, transaction);
            await using (check.ConfigureAwait(false))
                duplicates = (bool)(await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        return await CountAsync(connection, transaction, plan, duplicates ? plan.UpsertFromStagingDeduplicated : plan.UpsertFromStaging, null,
            hash.MemoryCap > 0 ? hash : null, cancellationToken).ConfigureAwait(false);
    }

    private static Task<(long Inserted, long Updated)> UpsertArraysAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        List<T> rows, CancellationToken cancellationToken)
    {
        // Unlike the staging path there is no cheap server-side check here: a possible repeat sorts the batch.
        var sql = plan.DoNothing || !KeyTracker.Unique(plan.KeyColumns, rows) ? plan.UpsertFromArraysDeduplicated : plan.UpsertFromArrays;
        var parameters = new List<NpgsqlParameter>(plan.Columns.Count);
        foreach (var (map, column) in plan.Columns)
        {
            var buffer = map.CreateBuffer(rows.Count);
            foreach (var row in rows) buffer.Add(row);
            parameters.Add(buffer.ToParameter(column.WriteTypeName.EndsWith("[]", StringComparison.Ordinal)
                ? throw new PostgresSchemaException($"bulk upsert into {plan.Table.DisplayName}: array column \"{column.Name}\" needs the COPY path; set UnnestThreshold = 0.")
                : column.WriteTypeName));
        }
        return CountAsync(connection, transaction, plan, sql, parameters, null, cancellationToken);
    }

    private static async Task<(long Inserted, long Updated)> CountAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        UpsertSql sql, List<NpgsqlParameter>? parameters, (long Rows, long MemoryCap)? mergeHash, CancellationToken cancellationToken)
    {
        if (!plan.CountFromStats) return await CountWithReturningAsync(connection, transaction, sql.Returning, parameters, cancellationToken).ConfigureAwait(false);
        if (sql.Merge is null) return await CountFromStatsAsync(connection, transaction, plan, sql.Plain, parameters, savepoint: false, null, cancellationToken).ConfigureAwait(false);
        try
        {
            return await CountFromStatsAsync(connection, transaction, plan, sql.Merge, parameters, savepoint: true, mergeHash, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.CardinalityViolation or PostgresErrorCodes.SerializationFailure)
        {
            // Another session inserted (or changed) one of these keys while MERGE ran: undo it and let ON CONFLICT
            // settle each row. The counters are read afresh, because the rolled-back attempt stays counted in them.
            await ExecuteAsync(connection, transaction, $"ROLLBACK TO SAVEPOINT {MergeSavepoint}; RELEASE SAVEPOINT {MergeSavepoint}", cancellationToken).ConfigureAwait(false);
            return await CountFromStatsAsync(connection, transaction, plan, sql.Plain, CloneParameters(parameters), savepoint: false, null, cancellationToken).ConfigureAwait(false);
        }
    }

    private const string MergeSavepoint = "polystore_merge";

    // The settings SteerMerge may change, kept in transaction-local custom settings and put back after the MERGE.
    // Three columns each, so the counter reader (two columns) skips them.
    private static readonly string[] JoinSettings = ["work_mem", "enable_hashjoin", "enable_mergejoin"];
    private static readonly string SaveJoinSettings = "SELECT " + string.Join(", ", JoinSettings.Select(n => $"pg_catalog.set_config('polystore.{n}', current_setting('{n}'), true)"));
    private static readonly string RestoreJoinSettings = "SELECT " + string.Join(", ", JoinSettings.Select(n => $"pg_catalog.set_config('{n}', current_setting('polystore.{n}'), true)"));

    /// <summary>
    /// One round trip: this backend's counters for the table, the statement, the counters again. The counters
    /// are the backend's own, pending until the transaction ends, so concurrent sessions cannot disturb the difference.
    /// </summary>
    private static async Task<(long Inserted, long Updated)> CountFromStatsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        string sql, List<NpgsqlParameter>? parameters, bool savepoint, (long Rows, long MemoryCap)? mergeHash, CancellationToken cancellationToken)
    {
        var batch = new NpgsqlBatch(connection, transaction);
        await using (batch.ConfigureAwait(false))
        {
            if (savepoint) batch.BatchCommands.Add(new NpgsqlBatchCommand($"SAVEPOINT {MergeSavepoint}"));
            if (mergeHash is { } hash)
            {
                // Inside the savepoint, so a failed MERGE also undoes it; restored explicitly after a good one
                // (the caller's transaction may go on).
                batch.BatchCommands.Add(new NpgsqlBatchCommand(SaveJoinSettings));
                batch.BatchCommands.Add(new NpgsqlBatchCommand(plan.SteerMerge)
                {
                    Parameters = { new() { Value = hash.Rows }, new() { Value = hash.MemoryCap }, new() { Value = plan.KeyNames } },
                });
            }
            batch.BatchCommands.Add(new NpgsqlBatchCommand(plan.TransactionCounters));
            var upsert = new NpgsqlBatchCommand(sql);
            if (parameters is not null) upsert.Parameters.AddRange(parameters.ToArray());
            batch.BatchCommands.Add(upsert);
            batch.BatchCommands.Add(new NpgsqlBatchCommand(plan.TransactionCounters));
            if (mergeHash is not null) batch.BatchCommands.Add(new NpgsqlBatchCommand(RestoreJoinSettings));
            if (savepoint) batch.BatchCommands.Add(new NpgsqlBatchCommand($"RELEASE SAVEPOINT {MergeSavepoint}"));
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                var counters = new List<(long, long)>(2);
                do
                {
                    if (reader.FieldCount == 2 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        counters.Add((reader.GetInt64(0), reader.GetInt64(1)));
                }
                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
                if (counters.Count != 2) throw new InvalidOperationException($"bulk upsert: expected two counter rows, read {counters.Count}.");
                return (counters[1].Item1 - counters[0].Item1, counters[1].Item2 - counters[0].Item2);
            }
        }
    }

    private static async Task<(long Inserted, long Updated)> CountWithReturningAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        string sql, List<NpgsqlParameter>? parameters, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            if (parameters is not null) command.Parameters.AddRange(parameters.ToArray());
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                return (reader.GetInt64(0), reader.GetInt64(1));
            }
        }
    }

    // A parameter belongs to one command's collection at a time; the fallback statement needs its own copies.
    private static List<NpgsqlParameter>? CloneParameters(List<NpgsqlParameter>? parameters) => parameters?.Select(p => p.Clone()).ToList();

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        await using (command.ConfigureAwait(false))
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<PostgresBulkUpsertResult> ChunkedAsync(NpgsqlConnection connection, IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, Stopwatch watch, CancellationToken cancellationToken)
    {
        long received = 0, inserted = 0, updated = 0;
        var commits = 0;
        PostgresBulkUpsertPlan<T>? plan = null;
        while (true)
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                plan ??= await ResolveAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                try
                {
                    var (r, i, u) = await UpsertAllAsync(connection, transaction, plan, rows, options, options.ChunkSize, cancellationToken).ConfigureAwait(false);
                    if (r == 0) break;
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    (received, inserted, updated, commits) = (received + r, inserted + i, updated + u, commits + 1);
                    if (r < options.ChunkSize) break;
                }
                catch (PostgresException e)
                {
                    throw new PostgresBulkUpsertException($"bulk upsert into {plan.Table.DisplayName} failed in chunk {commits + 1}; the {commits} chunk(s) before it ({received} rows) stay committed: {e.MessageText}", received, e);
                }
            }
        }
        return new PostgresBulkUpsertResult(received, inserted, updated, commits, watch.Elapsed);
    }

    private async Task<PostgresBulkUpsertResult> ParallelAsync(NpgsqlDataSource dataSource, IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, Stopwatch watch, CancellationToken cancellationToken)
    {
        // Check the catalog once up front so a bad name fails before any connection writes.
        PostgresBulkUpsertPlan<T> plan;
        var first = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (first.ConfigureAwait(false))
            plan = await ResolveAsync(first, null, cancellationToken).ConfigureAwait(false);

        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // One lane per connection, and each row goes to the lane its conflict key hashes to: a key's rows are then
        // upserted in input order on one connection, so the last row still wins across chunks, and no two
        // connections ever lock the same key (no deadlocks between chunks on it).
        var lanes = Enumerable.Range(0, options.Parallelism)
            .Select(_ => Channel.CreateBounded<List<T>>(new BoundedChannelOptions(1) { SingleWriter = true, SingleReader = true })).ToArray();
        long received = 0, inserted = 0, updated = 0, committedRows = 0;
        var commits = 0;
        var chunkOptions = options with { UnnestThreshold = 0 };

        async Task WorkerAsync(Channel<List<T>> lane)
        {
            try
            {
                await DrainAsync(lane).ConfigureAwait(false);
            }
            catch
            {
                // Stop the rest at once: the reader fills this lane and would otherwise wait on it forever.
                await failed.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }

        async Task DrainAsync(Channel<List<T>> lane)
        {
            var connection = await PostgresPool.OpenAsync(dataSource, failed.Token).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                await foreach (var chunk in lane.Reader.ReadAllAsync(failed.Token).ConfigureAwait(false))
                {
                    for (var attempt = 1; ; attempt++)
                    {
                        var transaction = await connection.BeginTransactionAsync(failed.Token).ConfigureAwait(false);
                        await using (transaction.ConfigureAwait(false))
                        {
                            try
                            {
                                var list = new ListRows(chunk.GetEnumerator(), default, chunk);
                                var (_, i, u) = await UpsertAllAsync(connection, transaction, plan, list, chunkOptions, long.MaxValue, failed.Token).ConfigureAwait(false);
                                await transaction.CommitAsync(failed.Token).ConfigureAwait(false);
                                Interlocked.Add(ref inserted, i);
                                Interlocked.Add(ref updated, u);
                                Interlocked.Add(ref committedRows, chunk.Count);
                                Interlocked.Increment(ref commits);
                                break;
                            }
                            // Lanes never share a conflict key, but another unique index or a trigger can still make two
                            // chunks lock rows in opposite order: retry the loser.
                            catch (PostgresException e) when (attempt < 5 && e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
                            {
                                await transaction.RollbackAsync(failed.Token).ConfigureAwait(false);
                            }
                        }
                    }
                }
            }
        }

        var workers = lanes.Select(lane => Task.Run(() => WorkerAsync(lane), failed.Token)).ToList();
        try
        {
            var filling = lanes.Select(_ => new List<T>(options.ChunkSize)).ToArray();
            while (await rows.MoveNextAsync().ConfigureAwait(false))
            {
                var row = rows.Current;
                var lane = Lane(KeyTracker.Hash(plan.KeyColumns, row), lanes.Length);
                filling[lane].Add(row);
                received++;
                if (filling[lane].Count == options.ChunkSize)
                {
                    await lanes[lane].Writer.WriteAsync(filling[lane], failed.Token).ConfigureAwait(false);
                    filling[lane] = new List<T>(options.ChunkSize);
                }
            }
            for (var lane = 0; lane < lanes.Length; lane++)
            {
                if (filling[lane].Count > 0) await lanes[lane].Writer.WriteAsync(filling[lane], failed.Token).ConfigureAwait(false);
                lanes[lane].Writer.Complete();
            }
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Whatever failed (a worker, the caller's sequence, cancellation): stop every worker before leaving.
            await failed.CancelAsync().ConfigureAwait(false);
            foreach (var lane in lanes) lane.Writer.TryComplete();
            var cause = await FirstFailureAsync(workers).ConfigureAwait(false) ?? e;
            if (cause is PostgresPoolExhaustedException || cause is not (PostgresException or NpgsqlException))
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(cause);
            throw new PostgresBulkUpsertException($"parallel bulk upsert into {plan.Table.DisplayName} failed; {commits} chunk(s) ({Interlocked.Read(ref committedRows)} rows) stay committed: {(cause as PostgresException)?.MessageText ?? cause.Message}", Interlocked.Read(ref committedRows), cause);
        }
        return new PostgresBulkUpsertResult(received, inserted, updated, commits, watch.Elapsed);
    }

    // The key hash's bits mixed (MurmurHash3's finalizer) first: an integer key's hash is near its value.
    private static int Lane(ulong keyHash, int lanes)
    {
        keyHash = (keyHash ^ (keyHash >> 33)) * 0xFF51AFD7ED558CCDUL;
        keyHash = (keyHash ^ (keyHash >> 33)) * 0xC4CEB9FE1A85EC53UL;
        return (int)((keyHash ^ (keyHash >> 33)) % (ulong)lanes);
    }

    private static async Task<Exception?> FirstFailureAsync(List<Task> workers)
    {
        try { await Task.WhenAll(workers).ConfigureAwait(false); } catch (Exception) { /* inspected below */ }
        return workers.Where(w => w.IsFaulted).Select(w => w.Exception!.InnerException).FirstOrDefault(e => e is not OperationCanceledException);
    }

    /// <summary>Remembers 64-bit hashes of conflict keys (up to a cap) to prove a batch has no duplicates.</summary>
    private sealed class KeyTracker(UpsertColumn<T>[] keys)
    {
        private const int Cap = 2_000_000;
        private HashSet<ulong>? _seen = [];

        /// <summary>True when no two rows can share a key (no hash collision, under the cap).</summary>
        public bool CertainlyUnique => _seen is not null;

        public static bool Unique(UpsertColumn<T>[] keys, IEnumerable<T> rows)
        {
            var tracker = new KeyTracker(keys);
            foreach (var row in rows)
            {
                tracker.Add(row);
                if (!tracker.CertainlyUnique) return false;
            }
            return true;
        }

        public void Add(T row)
        {
            if (_seen is null) return;
            if (!_seen.Add(Hash(keys, row)) || _seen.Count > Cap) _seen = null;
        }

        /// <summary>A 64-bit hash of the row's conflict key (equal keys, equal hashes).</summary>
        public static ulong Hash(UpsertColumn<T>[] keys, T row)
        {
            var hash = 14695981039346656037UL;
            foreach (var k in keys) hash = (hash ^ k.Hash(row)) * 1099511628211UL + 0x9E3779B97F4A7C15UL;
            return hash;
        }
    }

    /// <summary>A synchronous sequence seen as an async one (each step completes synchronously).</summary>
    private sealed class SyncRows(IEnumerable<T> rows) : IAsyncEnumerable<T>
    {
        // Collections can be read twice (once to hash the keys); a lazy sequence is read once.
        public IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
            new ListRows(rows.GetEnumerator(), cancellationToken, rows as IReadOnlyCollection<T>);
    }

    private sealed class ListRows(IEnumerator<T> inner, CancellationToken cancellationToken, IReadOnlyCollection<T>? inMemory) : IAsyncEnumerator<T>
    {
        /// <summary>The whole sequence, when it is a collection in memory.</summary>
        public IReadOnlyCollection<T>? InMemory { get; } = inMemory;

        /// <summary>Whether <see cref="InMemory"/> was proven to have unique keys (null: not checked yet).</summary>
        public bool? KeysUnique { get; set; }

        public T Current => inner.Current;

        public ValueTask<bool> MoveNextAsync()
        {
            cancellationToken.ThrowIfCancellationRequested();
            return ValueTask.FromResult(inner.MoveNext());
        }

        public ValueTask DisposeAsync()
        {
            inner.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

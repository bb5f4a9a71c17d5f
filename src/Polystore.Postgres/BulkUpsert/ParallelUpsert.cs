using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Parallel"/>: chunks of <see cref="PostgresBulkUpsertOptions.ChunkSize"/> rows, each
/// committed on its own, over <see cref="PostgresBulkUpsertOptions.Parallelism"/> connections. Each connection is a lane
/// fed through a bounded channel, and each row goes to the lane its conflict key hashes to (a collection in memory may
/// be dealt by key range or in contiguous chunks instead, see <see cref="DealingAsync"/>). Chunks always go through
/// the staged COPY path. Every connection is opened before the first row is read; a failing lane cancels the others at once.
/// </summary>
internal static class ParallelUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, UpsertProgress progress, CancellationToken cancellationToken)
    {
        // Every connection first, so a pool too small for Parallelism fails before any row is written, then the
        // catalog check on one of them.
        var connections = await OpenAllAsync(dataSource, options.Parallelism, cancellationToken).ConfigureAwait(false);
        try
        {
            var plan = await UpsertFailure.PlanAsync(UpsertPlanResolver.ResolveAsync(definition, connections[0], null, cancellationToken),
                PostgresBulkUpsertMode.Parallel, definition.TableName, progress, options, cancellationToken).ConfigureAwait(false);
            return await RunLanesAsync(dataSource, plan, connections, rows, options, progress, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var connection in connections) await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task<NpgsqlConnection[]> OpenAllAsync(NpgsqlDataSource dataSource, int count, CancellationToken cancellationToken)
    {
        var opening = Enumerable.Range(0, count).Select(_ => PostgresPool.OpenAsync(dataSource, cancellationToken).AsTask()).ToArray();
        try
        {
            return await Task.WhenAll(opening).ConfigureAwait(false);
        }
        catch
        {
            foreach (var task in opening.Where(t => t.IsCompletedSuccessfully)) await task.Result.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<(long Received, long Inserted, long Updated, int Commits)> RunLanesAsync(NpgsqlDataSource dataSource, PostgresBulkUpsertPlan<T> plan,
        NpgsqlConnection[] connections, IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, UpsertProgress progress, CancellationToken cancellationToken)
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // One lane per connection, and each row goes to the lane its conflict key hashes to (or whose key range holds
        // it): a key's rows are then upserted in input order on one connection, so the last row still wins across
        // chunks, and no two connections ever lock the same key (no deadlocks between chunks on it). Contiguous chunks
        // are dealt only when no key repeats, which gives the same guarantees.
        var lanes = connections.Select(_ => Channel.CreateBounded<List<T>>(new BoundedChannelOptions(1) { SingleWriter = true, SingleReader = true })).ToArray();
        var chunkOptions = options with { UnnestThreshold = 0 };
        long received = 0;
        var uniqueKeys = false; // the whole collection's keys proven unique; set before the first chunk is written to a lane

        async Task WorkerAsync(NpgsqlConnection connection, Channel<List<T>> lane)
        {
            try
            {
                await DrainAsync(connection, lane).ConfigureAwait(false);
            }
            catch
            {
                // Stop the rest at once: the reader fills this lane and would otherwise wait on it forever.
                await failed.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }

        async Task DrainAsync(NpgsqlConnection connection, Channel<List<T>> lane)
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
                            var list = new ListRows<T>(chunk.GetEnumerator(), default, chunk) { KeysUnique = uniqueKeys ? true : null };
                            var trip = new UpsertFirstTrip(null, wantTransactionId: true);
                            var (_, i, u, technique) = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, list, chunkOptions, long.MaxValue, trip, failed.Token).ConfigureAwait(false);
                            await UpsertCommit.CommitAsync(connection, transaction, progress, (chunk.Count, i, u, technique), options, trip.TransactionId, failed.Token).ConfigureAwait(false);
                            break;
                        }
                        // Lanes never share a conflict key, but another unique index or a trigger can still make two
                        // chunks lock rows in opposite order: retry the loser.
                        catch (PostgresException e) when (attempt < LockConflict.MaxAttempts && LockConflict.Lost(e))
                        {
                            options.Logger.BulkUpsertChunkRetried(plan.Table.DisplayName, chunk.Count, e.SqlState, attempt);
                            await transaction.RollbackAsync(failed.Token).ConfigureAwait(false);
                            await LockConflict.BackOffAsync(attempt, failed.Token).ConfigureAwait(false);
                        }
                    }
                }
            }
        }

        var workers = connections.Select((connection, i) => Task.Run(() => WorkerAsync(connection, lanes[i]), failed.Token)).ToList();
        try
        {
            // Chunks grow as rows come (not allocated at ChunkSize up front: a huge ChunkSize must not cost memory by itself).
            var filling = lanes.Select(_ => new List<T>()).ToArray();
            (var bounds, var contiguous, uniqueKeys) = await DealingAsync(connections[0], plan, rows, lanes.Length, failed.Token).ConfigureAwait(false);
            while (await rows.MoveNextAsync().ConfigureAwait(false))
            {
                var row = UpsertRows.NotNull(rows.Current);
                var lane = contiguous ? (int)(received / options.ChunkSize % lanes.Length)
                    : bounds is null ? Lane(KeyTracker<T>.Hash(plan.KeyColumns, row), lanes.Length)
                    : KeyOrder.RangeOf(bounds, plan.KeyColumns[0].Text(row));
                filling[lane].Add(row);
                received++;
                if (filling[lane].Count == options.ChunkSize)
                {
                    await lanes[lane].Writer.WriteAsync(filling[lane], failed.Token).ConfigureAwait(false);
                    filling[lane] = [];
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
            // Whatever failed (a worker, the caller's sequence, cancellation): stop every worker before counting.
            await failed.CancelAsync().ConfigureAwait(false);
            foreach (var lane in lanes) lane.Writer.TryComplete();
            var cause = await FirstFailureAsync(workers).ConfigureAwait(false) ?? e;
            UpsertTableCache.ForgetOnSchemaError(plan.Info.Key, cause);
            throw await UpsertFailure.CreateAsync(dataSource, PostgresBulkUpsertMode.Parallel, plan.Table.DisplayName, progress, cause, options, cancellationToken).ConfigureAwait(false);
        }
        return (received, progress.Inserted, progress.Updated, progress.Commits);
    }

    /// <summary>
    /// How a collection in memory (at least <see cref="KeyOrder.MinRows"/> rows) is dealt instead of by key hash. Mostly
    /// new rows with one text key: by key range, so each connection writes its own part of the key's index instead of
    /// all of them writing all over it. Mostly updates whose keys are proven unique: in contiguous chunks of the
    /// caller's order, dealt in turn (no key can be in two chunks), so each connection updates the rows the caller
    /// listed together, which a table filled in that order stores together (dealt by key, both connections updated
    /// pages all over the table). Anything else (a stream, repeated keys): by key hash. Whether the collection's keys are
    /// unique is proven once here, so that no chunk proves its own again.
    /// </summary>
    internal static async Task<(UInt128[]? Bounds, bool Contiguous, bool UniqueKeys)> DealingAsync(NpgsqlConnection connection, PostgresBulkUpsertPlan<T> plan,
        IAsyncEnumerator<T> rows, int lanes, CancellationToken cancellationToken)
    {
        if (rows is not ListRows<T> { InMemory: { Count: >= KeyOrder.MinRows } all }) return (null, false, false);
        var unique = Task.Run(() => KeyTracker<T>.Unique(plan.KeyColumns, all), CancellationToken.None);
        double tableRows;
        var size = new NpgsqlBatch(connection) { BatchCommands = { MergeJoinSteering.ReadShape(plan.TableShapeNow, plan.KeyNames) } };
        await using (size.ConfigureAwait(false))
        {
            try
            {
                tableRows = Convert.ToDouble(await size.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) ?? double.PositiveInfinity);
            }
            finally
            {
                await unique.ConfigureAwait(false); // never left running over the caller's collection
            }
        }
        var uniqueKeys = await unique.ConfigureAwait(false);
        if (KeyOrder.Worth(all.Count, tableRows, correlation: null))
            return (KeyOrder.Applies(plan.KeyColumns) ? KeyOrder.RangeBounds(plan.KeyColumns[0], all, lanes) : null, false, uniqueKeys);
        return (null, uniqueKeys, uniqueKeys);
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
}

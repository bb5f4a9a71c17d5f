using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Parallel"/>: chunks of <see cref="PostgresBulkUpsertOptions.ChunkSize"/> rows, each
/// committed on its own, over <see cref="PostgresBulkUpsertOptions.Parallelism"/> connections. Each connection is a lane
/// fed through a bounded channel, and each row goes to the lane its conflict key hashes to. Chunks always go through
/// the staged COPY path. A failing lane cancels the others at once.
/// </summary>
internal static class ParallelUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        // Check the catalog once up front so a bad name fails before any connection writes.
        PostgresBulkUpsertPlan<T> plan;
        var first = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (first.ConfigureAwait(false))
            plan = await UpsertPlanResolver.ResolveAsync(definition, first, null, cancellationToken).ConfigureAwait(false);

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
                                var list = new ListRows<T>(chunk.GetEnumerator(), default, chunk);
                                var (_, i, u) = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, list, chunkOptions, long.MaxValue, failed.Token).ConfigureAwait(false);
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
                var lane = Lane(KeyTracker<T>.Hash(plan.KeyColumns, row), lanes.Length);
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
                ExceptionDispatchInfo.Throw(cause);
            throw new PostgresBulkUpsertException($"parallel bulk upsert into {plan.Table.DisplayName} failed; {commits} chunk(s) ({Interlocked.Read(ref committedRows)} rows) stay committed: {(cause as PostgresException)?.MessageText ?? cause.Message}", Interlocked.Read(ref committedRows), cause);
        }
        return (received, inserted, updated, commits);
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

using Microsoft.Extensions.Logging;
using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Runs the statement that applies a batch and counts what it did. Where the plan counts from the table
/// counters, its MERGE runs under a savepoint, with the counters read before and after in the same round trip;
/// if a concurrent insert or change of a key makes the MERGE fail, the savepoint is rolled back and the
/// <c>INSERT … ON CONFLICT</c> form settles every row. Elsewhere the statement counts with <c>RETURNING</c>.
/// </summary>
internal static class UpsertStatementRunner<T>
{
    private const string MergeSavepoint = "polystore_merge";

    /// <summary>Runs <paramref name="sql"/> in its best form; <paramref name="mergeHash"/> (rows, memory cap, bytes per hash entry) steers a MERGE's join, null leaves the planner alone.</summary>
    public static async Task<(long Inserted, long Updated)> RunAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        UpsertSql sql, List<NpgsqlParameter>? parameters, (long Rows, long MemoryCap, double EntryBytes)? mergeHash, PostgresBulkUpsertOptions options, UpsertFirstTrip trip, CancellationToken cancellationToken)
    {
        var timeout = options.CommandTimeoutSeconds;
        if (!plan.CountFromStats)
        {
            if (trip.CheckPending)
            {
                var check = new NpgsqlBatch(connection, transaction) { Timeout = timeout };
                await using (check.ConfigureAwait(false))
                {
                    trip.AddCheck(check);
                    await check.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    trip.FirstBatchDone();
                }
            }
            return await CountWithReturningAsync(connection, transaction, sql.Returning, parameters, timeout, cancellationToken).ConfigureAwait(false);
        }
        if (sql.Merge is null) return await CountFromStatsAsync(connection, transaction, plan, sql.Plain, parameters, savepoint: false, null, timeout, trip, cancellationToken).ConfigureAwait(false);
        try
        {
            return await CountFromStatsAsync(connection, transaction, plan, sql.Merge, parameters, savepoint: true, mergeHash, timeout, trip, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.CardinalityViolation or PostgresErrorCodes.SerializationFailure)
        {
            // Another session inserted (or changed) one of these keys while MERGE ran: undo it and let ON CONFLICT
            // settle each row. The counters are read afresh, because the rolled-back attempt stays counted in them.
            options.Logger.BulkUpsertMergeFallback(plan.Table.DisplayName, e.SqlState);
            await ExecuteAsync(connection, transaction, $"ROLLBACK TO SAVEPOINT {MergeSavepoint}; RELEASE SAVEPOINT {MergeSavepoint}", options, cancellationToken).ConfigureAwait(false);
            return await CountFromStatsAsync(connection, transaction, plan, sql.Plain, CloneParameters(parameters), savepoint: false, null, timeout, trip, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs one statement without results.</summary>
    public static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = options.CommandTimeoutSeconds };
        await using (command.ConfigureAwait(false))
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One round trip: this backend's counters for the table, the statement, the counters again. The counters
    /// are the backend's own, pending until the transaction ends, so concurrent sessions cannot disturb the difference.
    /// </summary>
    private static async Task<(long Inserted, long Updated)> CountFromStatsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        string sql, List<NpgsqlParameter>? parameters, bool savepoint, (long Rows, long MemoryCap, double EntryBytes)? mergeHash, int timeout, UpsertFirstTrip trip, CancellationToken cancellationToken)
    {
        var batch = new NpgsqlBatch(connection, transaction) { Timeout = timeout };
        await using (batch.ConfigureAwait(false))
        {
            // A cached plan's check goes first: when it fails, nothing after it runs.
            trip.AddCheck(batch);
            if (savepoint) batch.BatchCommands.Add(new NpgsqlBatchCommand($"SAVEPOINT {MergeSavepoint}"));
            if (mergeHash is { } hash)
            {
                // Inside the savepoint, so a failed MERGE also undoes it; restored explicitly after a good one
                // (the caller's transaction may go on).
                batch.BatchCommands.Add(new NpgsqlBatchCommand(MergeJoinSteering.Save));
                batch.BatchCommands.Add(MergeJoinSteering.Steer(plan.SteerMerge, hash.Rows, hash.MemoryCap, hash.EntryBytes));
            }
            batch.BatchCommands.Add(new NpgsqlBatchCommand(plan.TransactionCounters));
            var upsert = new NpgsqlBatchCommand(sql);
            if (parameters is not null) upsert.Parameters.AddRange(parameters.ToArray());
            batch.BatchCommands.Add(upsert);
            batch.BatchCommands.Add(new NpgsqlBatchCommand(plan.TransactionCounters));
            if (mergeHash is not null) batch.BatchCommands.Add(new NpgsqlBatchCommand(MergeJoinSteering.Restore));
            if (savepoint) batch.BatchCommands.Add(new NpgsqlBatchCommand($"RELEASE SAVEPOINT {MergeSavepoint}"));
            trip.AddTransactionId(batch, connection);
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                // Only the counter statements return two columns (the steering ones and the check return one or three).
                var counters = new List<(long, long)>(2);
                string? transactionId = null;
                do
                {
                    if (reader.FieldCount == 2 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        counters.Add((reader.GetInt64(0), reader.GetInt64(1)));
                    else if (reader.FieldCount == 1 && reader.GetName(0) == UpsertFirstTrip.TransactionIdColumn && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        transactionId = reader.GetString(0);
                }
                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
                if (counters.Count != 2) throw new InvalidOperationException($"bulk upsert: expected two counter rows, read {counters.Count}.");
                trip.TransactionId ??= transactionId;
                trip.FirstBatchDone();
                return (counters[1].Item1 - counters[0].Item1, counters[1].Item2 - counters[0].Item2);
            }
        }
    }

    private static async Task<(long Inserted, long Updated)> CountWithReturningAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        string sql, List<NpgsqlParameter>? parameters, int timeout, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = timeout };
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
}

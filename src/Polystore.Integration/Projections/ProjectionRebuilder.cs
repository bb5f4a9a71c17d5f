using Npgsql;
using NpgsqlTypes;
using Polystore.Integration.Outbox;
using Polystore.Postgres;

namespace Polystore.Integration.Projections;

/// <summary>
/// Rebuilds a PostgreSQL JSONB projection from the outbox history into a new table, then swaps it in
/// for the live one, while commands and the live dispatcher keep running. The swap happens under the
/// live subscriber's checkpoint row lock (which pauses its dispatcher for the moment of the swap):
/// the new table is caught up to at least the live checkpoint, renamed over the live table, and the
/// live checkpoint set to the new table's position, all in one transaction.
/// </summary>
public static class ProjectionRebuilder
{
    /// <summary>Rebuilds <paramref name="live"/>, the read model of the subscriber named <paramref name="liveSubscriber"/>.</summary>
    /// <typeparam name="T">The document type.</typeparam>
    /// <param name="dataSource">The primary.</param>
    /// <param name="outbox">The outbox the projection reads.</param>
    /// <param name="live">The live read-model table.</param>
    /// <param name="liveSubscriber">The live subscriber's name (its checkpoint is carried over).</param>
    /// <param name="createProjection">Makes the projection for a store and a subscriber name (the same code as the live one).</param>
    /// <param name="cancellationToken">Cancels the rebuild before the swap; the live table is untouched then, and the staging table and checkpoint are removed.</param>
    public static async Task<RebuildReport> RebuildAsync<T>(
        NpgsqlDataSource dataSource,
        OutboxStore outbox,
        PostgresJsonbReadModelStore<T> live,
        string liveSubscriber,
        Func<IReadModelStore<T>, string, IOutboxSubscriber> createProjection,
        CancellationToken cancellationToken = default)
    {
        var stagingTable = $"{live.Table}__rebuild";
        if (stagingTable.Length > 63) throw new ArgumentException($"table name '{live.Table}' is too long to rebuild beside itself", nameof(live));
        var staging = new PostgresJsonbReadModelStore<T>(dataSource, live.Schema, stagingTable, live.JsonOptions);
        var stagingSubscriber = $"{liveSubscriber}@rebuild";
        var s = outbox.QuotedSchema;
        var quotedLive = $"{PostgresIdentifier.QuotePlain(live.Schema, "schema")}.{PostgresIdentifier.QuotePlain(live.Table, "table")}";
        var quotedStaging = $"{PostgresIdentifier.QuotePlain(live.Schema, "schema")}.{PostgresIdentifier.QuotePlain(stagingTable, "table")}";

        long replayed;
        try
        {
            // A fresh new version: empty table, checkpoint at the start of history.
            await ExecuteAsync(dataSource, $"DROP TABLE IF EXISTS {quotedStaging}", null, cancellationToken).ConfigureAwait(false);
            await staging.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(dataSource, $"DELETE FROM {s}.outbox_checkpoints WHERE name = $1", stagingSubscriber, cancellationToken).ConfigureAwait(false);
            var dispatcher = new OutboxDispatcher(dataSource, outbox, createProjection(staging, stagingSubscriber), new OutboxDispatcherOptions { BatchSize = 1000 });
            replayed = await dispatcher.ProcessAvailableAsync(cancellationToken).ConfigureAwait(false);

            var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                // Make sure the live checkpoint row exists, so it can be locked.
                await ExecuteAsync(connection, null, $"INSERT INTO {s}.outbox_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", liveSubscriber, cancellationToken).ConfigureAwait(false);
                var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    var liveAt = await CheckpointAsync(connection, transaction, s, liveSubscriber, forUpdate: true, cancellationToken).ConfigureAwait(false);
                    // Catch the new version up to the live one; the live dispatcher waits on our lock meanwhile.
                    for (var i = 0; ; i++)
                    {
                        var stagingAt = await CheckpointAsync(connection, transaction, s, stagingSubscriber, forUpdate: false, cancellationToken).ConfigureAwait(false);
                        if (stagingAt.CompareTo(liveAt) >= 0) break;
                        if (i == 1000) throw new TimeoutException("the rebuilt projection could not catch up with the live checkpoint");
                        var delivered = await dispatcher.ProcessAvailableAsync(cancellationToken).ConfigureAwait(false);
                        replayed += delivered;
                        if (delivered == 0) await Task.Delay(10, cancellationToken).ConfigureAwait(false);
                    }
                    var finalAt = await CheckpointAsync(connection, transaction, s, stagingSubscriber, forUpdate: false, cancellationToken).ConfigureAwait(false);
                    var swap = new NpgsqlBatch(connection, transaction)
                    {
                        BatchCommands =
                        {
                            new NpgsqlBatchCommand($"DROP TABLE {quotedLive}"),
                            new NpgsqlBatchCommand($"ALTER TABLE {quotedStaging} RENAME TO {PostgresIdentifier.QuotePlain(live.Table, "table")}"),
                            Command($"UPDATE {s}.outbox_checkpoints SET tx_id = $2, event_id = $3, updated_at = now() WHERE name = $1", liveSubscriber, finalAt.TxId, finalAt.EventId),
                            Command($"DELETE FROM {s}.outbox_checkpoints WHERE name = $1", stagingSubscriber),
                        },
                    };
                    await using (swap.ConfigureAwait(false)) await swap.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            // A rebuild that does not reach its swap leaves nothing behind: its checkpoint would hold outbox retention
            // back for good, and its table would only be dropped by the next rebuild.
            await CleanUpAsync(dataSource, quotedStaging, s, stagingSubscriber).ConfigureAwait(false);
            throw;
        }
        var documents = (await live.GetVersionsAsync(cancellationToken).ConfigureAwait(false)).Count;
        return new RebuildReport($"{live.Schema}.{live.Table}", replayed, documents);
    }

    private static async Task CleanUpAsync(NpgsqlDataSource dataSource, string quotedStaging, string schema, string stagingSubscriber)
    {
        await ForgetCheckpointQuietlyAsync(dataSource, schema, stagingSubscriber).ConfigureAwait(false);
        try
        {
            await ExecuteAsync(dataSource, $"DROP TABLE IF EXISTS {quotedStaging}", null, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            // The next rebuild starts by dropping it.
        }
    }

    /// <summary>
    /// Deletes a rebuild's checkpoint after it failed: left behind, it would hold outbox retention back for good. The
    /// database being away leaves it to the next rebuild, which starts by deleting it; the caller's error is what counts.
    /// </summary>
    internal static async Task ForgetCheckpointQuietlyAsync(NpgsqlDataSource dataSource, string schema, string name)
    {
        try
        {
            await ExecuteAsync(dataSource, $"DELETE FROM {schema}.outbox_checkpoints WHERE name = $1", name, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            // See above.
        }
    }

    internal readonly record struct Position(ulong TxId, long EventId) : IComparable<Position>
    {
        public int CompareTo(Position other) => TxId != other.TxId ? TxId.CompareTo(other.TxId) : EventId.CompareTo(other.EventId);
    }

    internal static async Task<Position> CheckpointAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string schema, string name, bool forUpdate, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand($"SELECT tx_id, event_id FROM {schema}.outbox_checkpoints WHERE name = $1{(forUpdate ? " FOR UPDATE" : "")}", connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = name });
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
                return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? new Position(reader.GetFieldValue<ulong>(0), reader.GetInt64(1)) : default;
        }
    }

    internal static NpgsqlBatchCommand Command(string sql, string name, ulong? txId = null, long? eventId = null)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = name });
        if (txId is { } tx) command.Parameters.Add(new NpgsqlParameter { Value = tx, NpgsqlDbType = NpgsqlDbType.Xid8 });
        if (eventId is { } id) command.Parameters.Add(new NpgsqlParameter { Value = id });
        return command;
    }

    internal static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql, string? name, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false)) await ExecuteAsync(connection, null, sql, name, cancellationToken).ConfigureAwait(false);
    }

    internal static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, string? name, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            if (name is not null) command.Parameters.Add(new NpgsqlParameter { Value = name });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}

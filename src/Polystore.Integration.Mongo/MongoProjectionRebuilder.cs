using System.Text.Json;
using MongoDB.Bson;
using MongoDB.Driver;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;

namespace Polystore.Integration.Mongo;

/// <summary>
/// Rebuilds a MongoDB projection (<see cref="MongoReadModelStore{T}"/>) from the outbox history into a temporary
/// collection, then swaps it in for the live one with <c>renameCollection</c> and <c>dropTarget</c>, while commands and
/// the live dispatcher keep running: the same shape as <see cref="ProjectionRebuilder"/> for PostgreSQL JSONB.
/// </summary>
/// <remarks>
/// The swap happens under the live subscriber's checkpoint row lock, which pauses its dispatcher: the temporary
/// collection is caught up to at least the live checkpoint, renamed over the live collection (MongoDB replaces it
/// atomically), and then the live checkpoint is set to the temporary one's position. The rename cannot be part of the
/// PostgreSQL transaction: if that transaction fails after the rename, the live checkpoint stays where it was, behind
/// the collection, and the live dispatcher delivers the events in between again, which the version guard ignores.
/// Only the retained outbox history is replayed (see <see cref="OutboxRetention"/>).
/// </remarks>
public static class MongoProjectionRebuilder
{
    /// <summary>Rebuilds the collection <paramref name="collection"/>, the read model of the subscriber named <paramref name="liveSubscriber"/>.</summary>
    /// <typeparam name="T">The document type.</typeparam>
    /// <param name="dataSource">The primary holding the outbox.</param>
    /// <param name="outbox">The outbox the projection reads.</param>
    /// <param name="database">The MongoDB database of the read model.</param>
    /// <param name="collection">The live collection.</param>
    /// <param name="liveSubscriber">The live subscriber's name (its checkpoint is carried over).</param>
    /// <param name="createProjection">Makes the projection for a store and a subscriber name (the same code as the live one).</param>
    /// <param name="json">The serializer options of the live <see cref="MongoReadModelStore{T}"/>; null = its default.</param>
    /// <param name="cancellationToken">Cancels the rebuild before the swap; the live collection is untouched then.</param>
    public static async Task<RebuildReport> RebuildAsync<T>(
        NpgsqlDataSource dataSource,
        OutboxStore outbox,
        IMongoDatabase database,
        string collection,
        string liveSubscriber,
        Func<IReadModelStore<T>, string, IOutboxSubscriber> createProjection,
        JsonSerializerOptions? json = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(outbox);
        ArgumentNullException.ThrowIfNull(database);
        ArgumentException.ThrowIfNullOrWhiteSpace(collection);
        ArgumentException.ThrowIfNullOrWhiteSpace(liveSubscriber);
        ArgumentNullException.ThrowIfNull(createProjection);
        var plan = Plan(database.DatabaseNamespace.DatabaseName, collection);
        var stagingSubscriber = $"{liveSubscriber}@rebuild";
        var s = outbox.QuotedSchema;

        long replayed;
        try
        {
            // A fresh new version: empty collection, checkpoint at the start of history.
            try
            {
                await database.RunCommandAsync<BsonDocument>(plan.DropStaging, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (MongoCommandException e) when (e.Code == 26)
            {
                // NamespaceNotFound (servers before 7.0): nothing to drop.
            }
            var staging = new MongoReadModelStore<T>(database, plan.Staging, json);
            await ProjectionRebuilder.ExecuteAsync(dataSource, $"DELETE FROM {s}.outbox_checkpoints WHERE name = $1", stagingSubscriber, cancellationToken).ConfigureAwait(false);
            var dispatcher = new OutboxDispatcher(dataSource, outbox, createProjection(staging, stagingSubscriber), new OutboxDispatcherOptions { BatchSize = 1000 });
            replayed = await dispatcher.ProcessAvailableAsync(cancellationToken).ConfigureAwait(false);

            var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                await ProjectionRebuilder.ExecuteAsync(connection, null, $"INSERT INTO {s}.outbox_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", liveSubscriber, cancellationToken).ConfigureAwait(false);
                var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    var liveAt = await ProjectionRebuilder.CheckpointAsync(connection, transaction, s, liveSubscriber, forUpdate: true, cancellationToken).ConfigureAwait(false);
                    // Catch the new version up to the live one; the live dispatcher waits on our lock meanwhile.
                    for (var i = 0; ; i++)
                    {
                        var stagingAt = await ProjectionRebuilder.CheckpointAsync(connection, transaction, s, stagingSubscriber, forUpdate: false, cancellationToken).ConfigureAwait(false);
                        if (stagingAt.CompareTo(liveAt) >= 0) break;
                        if (i == 1000) throw new TimeoutException("the rebuilt projection could not catch up with the live checkpoint");
                        var delivered = await dispatcher.ProcessAvailableAsync(cancellationToken).ConfigureAwait(false);
                        replayed += delivered;
                        if (delivered == 0) await Task.Delay(10, cancellationToken).ConfigureAwait(false);
                    }
                    var finalAt = await ProjectionRebuilder.CheckpointAsync(connection, transaction, s, stagingSubscriber, forUpdate: false, cancellationToken).ConfigureAwait(false);
                    // renameCollection runs against the admin database; dropTarget replaces the live collection in one step.
                    await database.Client.GetDatabase("admin").RunCommandAsync<BsonDocument>(plan.Swap, cancellationToken: CancellationToken.None).ConfigureAwait(false);
                    var checkpoints = new NpgsqlBatch(connection, transaction)
                    {
                        BatchCommands =
                        {
                            ProjectionRebuilder.Command($"UPDATE {s}.outbox_checkpoints SET tx_id = $2, event_id = $3, updated_at = now() WHERE name = $1", liveSubscriber, finalAt.TxId, finalAt.EventId),
                            ProjectionRebuilder.Command($"DELETE FROM {s}.outbox_checkpoints WHERE name = $1", stagingSubscriber),
                        },
                    };
                    await using (checkpoints.ConfigureAwait(false)) await checkpoints.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                    await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            // A rebuild that fails or is cancelled leaves nothing behind: its checkpoint would hold outbox retention back.
            await ProjectionRebuilder.ForgetCheckpointQuietlyAsync(dataSource, s, stagingSubscriber).ConfigureAwait(false);
            try
            {
                await database.RunCommandAsync<BsonDocument>(plan.DropStaging, cancellationToken: CancellationToken.None).ConfigureAwait(false);
            }
            catch (MongoException)
            {
                // Absent (renamed by a swap that went through), or the server is away: the next rebuild drops it first.
            }
            throw;
        }
        var live = new MongoReadModelStore<T>(database, collection, json);
        var documents = (await live.GetVersionsAsync(cancellationToken).ConfigureAwait(false)).Count;
        return new RebuildReport($"{database.DatabaseNamespace.DatabaseName}.{collection}", replayed, documents);
    }

    /// <summary>The commands a rebuild of <paramref name="collection"/> sends around its replay (also what tests assert).</summary>
    internal static RebuildPlan Plan(string databaseName, string collection)
    {
        var staging = $"{collection}__rebuild";
        // MongoDB caps a namespace (database.collection) at 255 bytes.
        if (System.Text.Encoding.UTF8.GetByteCount($"{databaseName}.{staging}") > 255)
            throw new ArgumentException($"collection name '{collection}' is too long to rebuild beside itself", nameof(collection));
        return new RebuildPlan(
            staging,
            new BsonDocument("drop", staging),
            new BsonDocument { { "renameCollection", $"{databaseName}.{staging}" }, { "to", $"{databaseName}.{collection}" }, { "dropTarget", true } });
    }

    /// <summary>The temporary collection, the command that empties it first, and the swap.</summary>
    internal sealed record RebuildPlan(string Staging, BsonDocument DropStaging, BsonDocument Swap);
}

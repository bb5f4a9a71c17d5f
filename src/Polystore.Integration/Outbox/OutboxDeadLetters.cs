using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Polystore.Core;
using Polystore.Postgres;

namespace Polystore.Integration.Outbox;

/// <summary>
/// The dead letters of an outbox: list them, look at one, deliver them again to their subscriber, or drop them.
/// Every replay and drop is recorded in <c>outbox_dead_letter_log</c> with who asked and when.
/// </summary>
/// <remarks>
/// <para><b>Replay.</b> Each dead letter is delivered again in its own transaction, in commit order, through the same
/// <see cref="IOutboxSubscriber.HandleBatchAsync"/> and <see cref="OutboxContext"/> as the dispatcher, while holding the
/// subscriber's checkpoint row lock (so no dispatcher batch of that subscriber runs at the same moment). The dead letter
/// is deleted in that transaction: a write the subscriber makes through <see cref="OutboxContext.Transaction"/> happens
/// exactly once, and replaying an event that was already replayed is a no-op (it is reported as not found).
/// A failing replay rolls back, leaves the dead letter in place with the new error and one more attempt, and stops the
/// replay there (the events after it stay dead letters, so order is kept); the exception reaches the caller.</para>
/// </remarks>
public sealed class OutboxDeadLetters
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly OutboxStore _store;
    private readonly ILogger _logger;
    private readonly string _s;

    /// <summary>Creates the handle.</summary>
    /// <param name="dataSource">The database holding the outbox (the primary).</param>
    /// <param name="store">The outbox tables.</param>
    /// <param name="loggerFactory">Where replays and drops are logged; null = the data source's factory, else nowhere.</param>
    public OutboxDeadLetters(NpgsqlDataSource dataSource, OutboxStore store, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(store);
        _dataSource = dataSource;
        _store = store;
        _s = store.QuotedSchema;
        _logger = (loggerFactory ?? PostgresDataSources.LoggerFactoryOf(dataSource) ?? NullLoggerFactory.Instance).CreateLogger<OutboxDeadLetters>();
    }

    private string Columns => "d.name, d.event_id, d.tx_id, coalesce(d.stream, ''), coalesce(d.aggregate_id, ''), coalesce(d.version, 0), d.type, d.payload::text, coalesce(d.created_at, d.failed_at), d.attempts, d.last_error, d.failed_at";

    /// <summary>The dead letters of <paramref name="subscriber"/> (null = every subscriber), oldest commit first, at most <paramref name="limit"/>.</summary>
    public async Task<IReadOnlyList<OutboxDeadLetter>> ListAsync(string? subscriber = null, int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
            return await QueryAsync(connection, null, $"SELECT {Columns} FROM {_s}.outbox_dead_letters d WHERE ($1::text IS NULL OR d.name = $1) ORDER BY d.name, d.tx_id, d.event_id LIMIT $2",
                [new NpgsqlParameter { Value = (object?)subscriber ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text }, new NpgsqlParameter { Value = limit }], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One dead letter, or null when <paramref name="eventId"/> is not a dead letter of <paramref name="subscriber"/>.</summary>
    public async Task<OutboxDeadLetter?> GetAsync(string subscriber, long eventId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
            return (await QueryAsync(connection, null, $"SELECT {Columns} FROM {_s}.outbox_dead_letters d WHERE d.name = $1 AND d.event_id = $2",
                [new NpgsqlParameter { Value = subscriber }, new NpgsqlParameter { Value = eventId }], cancellationToken).ConfigureAwait(false)).SingleOrDefault();
    }

    /// <summary>What was done to the dead letters of <paramref name="subscriber"/> (only <paramref name="eventId"/>'s when given), oldest first.</summary>
    public async Task<IReadOnlyList<OutboxDeadLetterAction>> GetLogAsync(string subscriber, long? eventId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT name, event_id, action, actor, db_user, at FROM {_s}.outbox_dead_letter_log WHERE name = $1 AND ($2::bigint IS NULL OR event_id = $2) ORDER BY at, event_id", connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = subscriber });
                command.Parameters.Add(new NpgsqlParameter { Value = (object?)eventId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
                var result = new List<OutboxDeadLetterAction>();
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        result.Add(new OutboxDeadLetterAction(reader.GetString(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetFieldValue<DateTimeOffset>(5)));
                return result;
            }
        }
    }

    /// <summary>
    /// Delivers the dead letters of <paramref name="subscriber"/> again, in commit order, each in its own transaction (see the remarks).
    /// </summary>
    /// <param name="subscriber">The subscriber, with the same name it dead-lettered them under.</param>
    /// <param name="eventIds">Which ones; null = all of the subscriber's.</param>
    /// <param name="actor">Who asks, recorded in the log (for example <c>alice@host</c>).</param>
    /// <param name="cancellationToken">Stops between events.</param>
    public async Task<OutboxReplayReport> ReplayAsync(IOutboxSubscriber subscriber, IReadOnlyCollection<long>? eventIds, string actor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        var pending = await PendingIdsAsync(subscriber.Name, eventIds, cancellationToken).ConfigureAwait(false);
        var notFound = eventIds is null ? [] : eventIds.Distinct().Where(id => !pending.Contains(id)).Order().ToList();
        var replayed = new List<long>();
        try
        {
            foreach (var eventId in pending)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (await ReplayOneAsync(subscriber, eventId, actor, cancellationToken).ConfigureAwait(false)) replayed.Add(eventId);
                else notFound.Add(eventId); // replayed or dropped meanwhile by someone else
            }
        }
        finally
        {
            if (replayed.Count > 0) _logger.OutboxDeadLettersReplayed(replayed.Count, _store.Schema, subscriber.Name, actor);
        }
        return new OutboxReplayReport(replayed, notFound);
    }

    private async Task<List<long>> PendingIdsAsync(string subscriber, IReadOnlyCollection<long>? eventIds, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT event_id FROM {_s}.outbox_dead_letters WHERE name = $1 AND ($2::bigint[] IS NULL OR event_id = ANY($2)) ORDER BY tx_id, event_id", connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = subscriber });
                command.Parameters.Add(new NpgsqlParameter { Value = (object?)eventIds?.ToArray() ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                var ids = new List<long>();
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) ids.Add(reader.GetInt64(0));
                return ids;
            }
        }
    }

    private async Task<bool> ReplayOneAsync(IOutboxSubscriber subscriber, long eventId, string actor, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            OutboxContext context;
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                // The checkpoint row lock keeps this subscriber's dispatcher batches out while the replay runs.
                await ExecuteAsync(connection, transaction, $"SELECT 1 FROM {_s}.outbox_checkpoints WHERE name = $1 FOR UPDATE", cancellationToken, subscriber.Name).ConfigureAwait(false);
                var letter = (await QueryAsync(connection, transaction, $"SELECT {Columns} FROM {_s}.outbox_dead_letters d WHERE d.name = $1 AND d.event_id = $2 FOR UPDATE",
                    [new NpgsqlParameter { Value = subscriber.Name }, new NpgsqlParameter { Value = eventId }], cancellationToken).ConfigureAwait(false)).SingleOrDefault();
                if (letter is null) return false;
                context = new OutboxContext(connection, transaction);
                try
                {
                    await subscriber.HandleBatchAsync([letter.Event], context, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
                    await ExecuteAsync(connection, null, $"UPDATE {_s}.outbox_dead_letters SET attempts = attempts + 1, last_error = $3 WHERE name = $1 AND event_id = $2",
                        CancellationToken.None, subscriber.Name, eventId, OutboxDispatcher.LastError(e)).ConfigureAwait(false);
                    throw;
                }
                await ExecuteAsync(connection, transaction, $"""
                    WITH gone AS (DELETE FROM {_s}.outbox_dead_letters WHERE name = $1 AND event_id = $2 RETURNING name, event_id, type)
                    INSERT INTO {_s}.outbox_dead_letter_log (name, event_id, action, actor, type) SELECT name, event_id, 'replayed', $3, type FROM gone
                    """, cancellationToken, subscriber.Name, eventId, actor).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
            foreach (var action in context.AfterCommitActions)
            {
                try { await action(cancellationToken).ConfigureAwait(false); }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested) { _logger.OutboxAfterCommitFailed(Redactor.Redact(e), subscriber.Name); }
            }
            return true;
        }
    }

    /// <summary>
    /// Removes dead letters of <paramref name="subscriber"/> without delivering them, recording who and when; returns the
    /// ids removed (an id that is not a dead letter is left out).
    /// </summary>
    /// <param name="subscriber">The subscriber's name.</param>
    /// <param name="eventIds">Which ones; null = all of the subscriber's.</param>
    /// <param name="actor">Who asks, recorded in the log.</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    public async Task<IReadOnlyList<long>> DropAsync(string subscriber, IReadOnlyCollection<long>? eventIds, string actor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"""
                WITH gone AS (DELETE FROM {_s}.outbox_dead_letters WHERE name = $1 AND ($2::bigint[] IS NULL OR event_id = ANY($2)) RETURNING name, event_id, type),
                logged AS (INSERT INTO {_s}.outbox_dead_letter_log (name, event_id, action, actor, type) SELECT name, event_id, 'dropped', $3, type FROM gone)
                SELECT event_id FROM gone ORDER BY event_id
                """, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = subscriber });
                command.Parameters.Add(new NpgsqlParameter { Value = (object?)eventIds?.ToArray() ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                command.Parameters.Add(new NpgsqlParameter { Value = actor });
                var ids = new List<long>();
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) ids.Add(reader.GetInt64(0));
                if (ids.Count > 0) _logger.OutboxDeadLettersDropped(ids.Count, _store.Schema, subscriber, actor);
                return ids;
            }
        }
    }

    private static async Task<List<OutboxDeadLetter>> QueryAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, NpgsqlParameter[] parameters, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.AddRange(parameters);
            var result = new List<OutboxDeadLetter>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var outboxEvent = new OutboxEvent(reader.GetInt64(1), reader.GetFieldValue<ulong>(2), reader.GetString(3), reader.GetString(4), reader.GetInt64(5),
                        reader.GetString(6), reader.GetString(7), reader.GetFieldValue<DateTimeOffset>(8));
                    result.Add(new OutboxDeadLetter(reader.GetString(0), outboxEvent, reader.GetInt32(9), reader.GetString(10), reader.GetFieldValue<DateTimeOffset>(11)));
                }
            }
            return result;
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken, params object[] values)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            foreach (var value in values) command.Parameters.Add(new NpgsqlParameter { Value = value });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}

using Npgsql;
using Polystore.Postgres;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Remembers which events a consumer has processed, in a PostgreSQL table <c>{schema}.inbox (consumer, event_id,
/// processed_at)</c>, in the same transaction as the consumer's own writes: an event's effect commits together with
/// its mark, so a redelivered event (a consumer that died before acknowledging) changes nothing. With an
/// at-least-once source such as <see cref="RedisStreamConsumer"/> that makes each event's effect happen exactly once.
/// </summary>
/// <remarks>
/// Marks are kept for <see cref="PruneAsync"/>'s age: it must exceed how long an event can still be redelivered
/// (the source's retention, for a Redis Stream its length cap and the consumers' claim time).
/// </remarks>
public sealed class PostgresInbox
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _table;

    /// <summary>Creates the handle; call <see cref="EnsureCreatedAsync"/> once before use.</summary>
    /// <param name="dataSource">The database holding the consumer's own tables.</param>
    /// <param name="schema">The schema of the inbox table (a plain lower-case identifier).</param>
    /// <param name="consumer">The consumer's stable name; each consumer has its own marks.</param>
    public PostgresInbox(NpgsqlDataSource dataSource, string schema, string consumer)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrWhiteSpace(consumer);
        _dataSource = dataSource;
        _table = $"{PostgresIdentifier.QuotePlain(schema, nameof(schema))}.inbox";
        Consumer = consumer;
    }

    /// <summary>The consumer's name.</summary>
    public string Consumer { get; }

    /// <summary>Creates the schema and table if missing.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var schema = _table[.._table.LastIndexOf('.')];
            var batch = Sql.Batch(connection, null, $"""
                SELECT pg_advisory_xact_lock(hashtext('polystore.inbox.ddl'));
                CREATE SCHEMA IF NOT EXISTS {schema};
                CREATE TABLE IF NOT EXISTS {_table} (consumer text NOT NULL, event_id bigint NOT NULL, processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id));
                CREATE INDEX IF NOT EXISTS inbox_processed_at ON {_table} (processed_at);
                """);
            await using (batch.ConfigureAwait(false)) await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Marks <paramref name="eventId"/> processed inside <paramref name="transaction"/>; true the first time (apply the
    /// event's effect in the same transaction), false when it was already processed (skip it). A concurrent mark of the
    /// same event waits for the first transaction, then gets false if it committed.
    /// </summary>
    public async Task<bool> TryMarkAsync(NpgsqlTransaction transaction, long eventId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var command = new NpgsqlCommand($"INSERT INTO {_table} (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", transaction.Connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = Consumer });
            command.Parameters.Add(new NpgsqlParameter { Value = eventId });
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    /// <summary>
    /// Applies each event not processed before, in one transaction with its mark, and commits; returns how many were
    /// applied (the rest were duplicates). Throwing from <paramref name="apply"/> rolls back the whole batch.
    /// </summary>
    public async Task<int> ProcessAsync(IReadOnlyList<RelayedEvent> events, Func<RelayedEvent, NpgsqlTransaction, CancellationToken, Task> apply, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(apply);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var applied = 0;
                foreach (var relayed in events)
                {
                    if (!await TryMarkAsync(transaction, relayed.EventId, cancellationToken).ConfigureAwait(false)) continue;
                    await apply(relayed, transaction, cancellationToken).ConfigureAwait(false);
                    applied++;
                }
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return applied;
            }
        }
    }

    private static readonly TimeSpan OlderThanAnyMark = TimeSpan.FromDays(365.25 * 4000);

    /// <summary>Forgets marks older than <paramref name="olderThan"/> (in batches of 10000); returns how many.</summary>
    public async Task<long> PruneAsync(TimeSpan olderThan, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(olderThan, TimeSpan.Zero);
        // No mark is older than the calendar, and now() minus such an age is out of PostgreSQL's range.
        if (olderThan > OlderThanAnyMark) return 0;
        long total = 0;
        while (true)
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var command = new NpgsqlCommand($"""
                    DELETE FROM {_table} i USING (SELECT consumer, event_id FROM {_table} WHERE consumer = $1 AND processed_at < now() - $2 LIMIT 10000 FOR UPDATE SKIP LOCKED) old
                    WHERE i.consumer = old.consumer AND i.event_id = old.event_id
                    """, connection);
                await using (command.ConfigureAwait(false))
                {
                    command.Parameters.Add(new NpgsqlParameter { Value = Consumer });
                    command.Parameters.Add(new NpgsqlParameter { Value = olderThan });
                    var deleted = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    total += deleted;
                    if (deleted < 10000) return total;
                }
            }
        }
    }
}

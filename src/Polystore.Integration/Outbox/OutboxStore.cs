using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres;

namespace Polystore.Integration.Outbox;

/// <summary>
/// The outbox tables in one PostgreSQL schema, and appending to them. Events are appended inside the
/// caller's transaction, so they exist if and only if the command's writes committed: no event is
/// lost after a commit, and none is published for a change that rolled back.
/// </summary>
public sealed class OutboxStore
{
    /// <summary>Creates the handle; call <see cref="EnsureCreatedAsync"/> once before use.</summary>
    /// <param name="schema">The schema holding the outbox tables (a plain lower-case identifier).</param>
    public OutboxStore(string schema = "polystore")
    {
        Schema = schema;
        QuotedSchema = PostgresIdentifier.QuotePlain(schema, nameof(schema));
        Channel = $"{schema}_outbox";
    }

    /// <summary>The schema name.</summary>
    public string Schema { get; }

    internal string QuotedSchema { get; }

    /// <summary>The LISTEN/NOTIFY channel that wakes dispatchers on commit.</summary>
    public string Channel { get; }

    /// <summary>Creates the schema and tables if missing (idempotent).</summary>
    public async Task EnsureCreatedAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken = default)
    {
        var s = QuotedSchema;
        var ddl = $"""
            CREATE SCHEMA IF NOT EXISTS {s};
            CREATE TABLE IF NOT EXISTS {s}.outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                stream text NOT NULL,
                aggregate_id text NOT NULL,
                version bigint NOT NULL,
                type text NOT NULL,
                payload jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp());
            -- Commit order is (tx_id, id) read below the snapshot's xmin horizon; see OutboxDispatcher.
            CREATE INDEX IF NOT EXISTS outbox_commit_order ON {s}.outbox (tx_id, id);
            CREATE TABLE IF NOT EXISTS {s}.outbox_checkpoints (
                name text PRIMARY KEY,
                tx_id xid8 NOT NULL DEFAULT '0',
                event_id bigint NOT NULL DEFAULT 0,
                updated_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE IF NOT EXISTS {s}.outbox_attempts (
                name text NOT NULL,
                event_id bigint NOT NULL,
                attempts int NOT NULL,
                last_error text NOT NULL,
                PRIMARY KEY (name, event_id));
            CREATE TABLE IF NOT EXISTS {s}.outbox_dead_letters (
                name text NOT NULL,
                event_id bigint NOT NULL,
                tx_id xid8 NOT NULL,
                type text NOT NULL,
                payload jsonb NOT NULL,
                attempts int NOT NULL,
                last_error text NOT NULL,
                failed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (name, event_id));
            """;
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Concurrent first starts would race on CREATE ... IF NOT EXISTS; serialize them.
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var batch = Sql.Batch(connection, transaction, $"SELECT pg_advisory_xact_lock(hashtext('polystore.outbox.ddl'));\n{ddl}");
            await using (transaction.ConfigureAwait(false))
            await using (batch.ConfigureAwait(false))
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Appends <paramref name="messages"/> inside <paramref name="transaction"/> and wakes dispatchers on commit.</summary>
    public async Task AppendAsync(NpgsqlTransaction transaction, IReadOnlyList<OutboxMessage> messages, CancellationToken cancellationToken = default)
    {
        if (messages.Count == 0) return;
        var connection = transaction.Connection ?? throw new InvalidOperationException("the transaction has completed");
        var batch = new NpgsqlBatch(connection, transaction);
        await using (batch.ConfigureAwait(false))
        {
            var insert = new NpgsqlBatchCommand(
                $"INSERT INTO {QuotedSchema}.outbox (stream, aggregate_id, version, type, payload) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::jsonb[])");
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.Stream).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.AggregateId).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.Version).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.Type).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.PayloadJson).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
            // NOTIFY takes a cluster-wide lock at commit, which serializes every notifying commit. So
            // only one in-flight transaction at a time notifies: whoever gets the transaction-scoped
            // try-lock. A commit that skipped it is picked up by the dispatcher's follow-up read after
            // the notifier's wake-up, or by its poll.
            var notify = new NpgsqlBatchCommand("SELECT pg_notify($1, '') WHERE pg_try_advisory_xact_lock(hashtextextended($1, 0))");
            notify.Parameters.Add(new NpgsqlParameter { Value = Channel });
            batch.BatchCommands.Add(insert);
            batch.BatchCommands.Add(notify);
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Appends one message inside <paramref name="transaction"/>.</summary>
    public Task AppendAsync(NpgsqlTransaction transaction, OutboxMessage message, CancellationToken cancellationToken = default) =>
        AppendAsync(transaction, [message], cancellationToken);
}

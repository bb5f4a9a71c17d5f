using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
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
        Channel = ChannelFor(schema);
    }

    /// <summary>The schema name.</summary>
    public string Schema { get; }

    internal string QuotedSchema { get; }

    /// <summary>The LISTEN/NOTIFY channel that wakes dispatchers on commit: <c>{schema}_outbox</c>, or for a schema name too long for that, its first 47 characters, a hash of the whole name and <c>_outbox</c>.</summary>
    public string Channel { get; }

    // Channel names are identifiers (63 bytes at most; pg_notify refuses longer ones and LISTEN would cut them).
    // The hash keeps two long schema names with the same beginning on channels of their own.
    private static string ChannelFor(string schema)
    {
        const string suffix = "_outbox";
        if (schema.Length + suffix.Length <= PostgresIdentifier.MaxLength) return schema + suffix;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(schema)))[..8];
        return $"{schema[..(PostgresIdentifier.MaxLength - suffix.Length - 9)]}_{hash}{suffix}";
    }

    /// <summary>
    /// Creates the schema and tables if missing (idempotent), and brings tables made by an earlier version up to
    /// date: the outbox gains the nullable <c>trace_parent</c> and <c>trace_state</c> columns, the dead letters the event's
    /// <c>stream</c>, <c>aggregate_id</c>, <c>version</c> and <c>created_at</c> (logged once, as event 110).
    /// </summary>
    public async Task EnsureCreatedAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
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
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                trace_parent text,
                trace_state text);
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
                stream text,
                aggregate_id text,
                version bigint,
                created_at timestamptz,
                PRIMARY KEY (name, event_id));
            -- Who replayed or dropped which dead letter, and when.
            CREATE TABLE IF NOT EXISTS {s}.outbox_dead_letter_log (
                name text NOT NULL,
                event_id bigint NOT NULL,
                action text NOT NULL,
                actor text NOT NULL,
                db_user text NOT NULL DEFAULT current_user,
                type text NOT NULL,
                at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX IF NOT EXISTS outbox_dead_letter_log_event ON {s}.outbox_dead_letter_log (name, event_id);
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
                var upgraded = await AddMissingColumnsAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                if (upgraded && PostgresDataSources.LoggerFactoryOf(dataSource) is { } loggerFactory)
                    loggerFactory.CreateLogger<OutboxStore>().OutboxSchemaUpgraded(Schema);
            }
        }
    }

    /// <summary>
    /// Adds the columns that tables made by earlier versions lack (the outbox's trace context, the dead letters' event
    /// fields); false when they are there. Looked up first, because ALTER TABLE locks the table (and so every append)
    /// even when it has nothing to add.
    /// </summary>
    private async Task<bool> AddMissingColumnsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var check = new NpgsqlCommand(
            """
            SELECT (SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname IN ('trace_parent', 'trace_state') AND NOT attisdropped),
                   (SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = $2::regclass AND attname IN ('stream', 'aggregate_id', 'version', 'created_at') AND NOT attisdropped)
            """,
            connection, transaction);
        long outbox, deadLetters;
        await using (check.ConfigureAwait(false))
        {
            check.Parameters.Add(new NpgsqlParameter { Value = $"{QuotedSchema}.outbox" });
            check.Parameters.Add(new NpgsqlParameter { Value = $"{QuotedSchema}.outbox_dead_letters" });
            var reader = await check.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                (outbox, deadLetters) = (reader.GetInt64(0), reader.GetInt64(1));
            }
        }
        if (outbox == 2 && deadLetters == 4) return false;
        var script = new List<string>();
        if (outbox != 2) script.Add($"ALTER TABLE {QuotedSchema}.outbox ADD COLUMN IF NOT EXISTS trace_parent text, ADD COLUMN IF NOT EXISTS trace_state text");
        if (deadLetters != 4)
            script.Add($"ALTER TABLE {QuotedSchema}.outbox_dead_letters ADD COLUMN IF NOT EXISTS stream text, ADD COLUMN IF NOT EXISTS aggregate_id text, ADD COLUMN IF NOT EXISTS version bigint, ADD COLUMN IF NOT EXISTS created_at timestamptz");
        foreach (var sql in script)
        {
            var alter = new NpgsqlCommand(sql, connection, transaction);
            await using (alter.ConfigureAwait(false))
                await alter.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>
    /// Appends <paramref name="messages"/> inside <paramref name="transaction"/> and wakes dispatchers on commit. Each row
    /// keeps the W3C trace context of the current activity (the <c>outbox_append</c> span when it is recorded), which
    /// the dispatch span links to.
    /// </summary>
    public async Task AppendAsync(NpgsqlTransaction transaction, IReadOnlyList<OutboxMessage> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) return;
        var connection = transaction.Connection ?? throw new InvalidOperationException("the transaction has completed");
        using var activity = StartAppend(connection, messages);
        try
        {
            await InsertAsync(connection, transaction, messages, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            IntegrationTelemetry.Fail(activity, e);
            throw;
        }
        if (IntegrationTelemetry.Appended.Enabled) IntegrationTelemetry.Appended.Add(messages.Count, new KeyValuePair<string, object?>("schema", Schema));
    }

    private Activity? StartAppend(NpgsqlConnection connection, IReadOnlyList<OutboxMessage> messages)
    {
        if (!IntegrationTelemetry.Source.HasListeners()) return null;
        var activity = IntegrationTelemetry.Source.StartActivity($"outbox_append {Schema}", ActivityKind.Producer);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("db.system.name", "postgresql");
        activity.SetTag("db.namespace", connection.Database);
        activity.SetTag("db.collection.name", $"{Schema}.outbox");
        activity.SetTag("polystore.outbox.schema", Schema);
        activity.SetTag("polystore.outbox.events", messages.Count);
        activity.SetTag("polystore.outbox.event_type", IntegrationTelemetry.EventTypes(messages, m => m.Type));
        return activity;
    }

    /// <summary>
    /// The trace context stored with the events: the append span when it is recorded, else the nearest recorded
    /// activity above it (the caller's), else a remote caller's context. A context naming a span nobody recorded would
    /// give the dispatch span a link to nothing. Only W3C ids can be stored (the hierarchical format has no trace id).
    /// </summary>
    private static (string? Parent, string? State) TraceContext()
    {
        for (var activity = Activity.Current; activity is { IdFormat: ActivityIdFormat.W3C }; activity = activity.Parent)
        {
            if (activity.Recorded) return (activity.Id, activity.TraceStateString);
            if (activity.Parent is null && activity.ParentId is { } remote) return (remote, activity.TraceStateString);
        }
        return (null, null);
    }

    private async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<OutboxMessage> messages, CancellationToken cancellationToken)
    {
        var (traceParent, traceState) = TraceContext();
        var batch = new NpgsqlBatch(connection, transaction);
        await using (batch.ConfigureAwait(false))
        {
            var insert = new NpgsqlBatchCommand(
                $"INSERT INTO {QuotedSchema}.outbox (stream, aggregate_id, version, type, payload, trace_parent, trace_state) " +
                "SELECT u.*, $6, $7 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::jsonb[]) AS u");
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.Stream).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.AggregateId).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.Version).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.Type).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = messages.Select(m => m.PayloadJson).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)traceParent ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)traceState ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
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

using System.Text.Json;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;

namespace Polystore.Integration.Tests;

/// <summary><see cref="ReadModelProjection{T}"/> on a domain of its own: notes, whose events carry the whole note.</summary>
public sealed class ReadModelProjectionTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public sealed record Note(string Text);

    private static Note? ToNote(OutboxEvent e, string stream) => e.Stream == stream ? JsonSerializer.Deserialize<Note>(e.PayloadJson) : null;

    private async Task AppendAsync(string stream, params (string Id, long Version, string Text)[] notes)
    {
        await using var connection = await schema.DataSource.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await schema.Store.AppendAsync(transaction, notes.Select(n => new OutboxMessage(stream, n.Id, n.Version, "note.saved", JsonSerializer.Serialize(new Note(n.Text)))).ToList(), Ct);
        await transaction.CommitAsync(Ct);
    }

    private async Task<PostgresJsonbReadModelStore<Note>> StoreAsync(string table)
    {
        var store = new PostgresJsonbReadModelStore<Note>(schema.DataSource, schema.Store.Schema, table);
        await store.EnsureCreatedAsync(Ct);
        return store;
    }

    [Fact]
    public async Task Each_id_ends_at_its_newest_version_and_events_the_mapping_ignores_are_checkpointed_not_stored()
    {
        var store = await StoreAsync("notes");
        await AppendAsync("note", ("n1", 1, "first"), ("n1", 3, "third"));
        await AppendAsync("note", ("n1", 2, "second, late"), ("n2", 1, "other"));
        await AppendAsync("not_a_note", ("x1", 1, "ignored"));
        var projection = new ReadModelProjection<Note>("notes", store, e => ToNote(e, "note"));
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);

        await Delivery.UntilAsync(new OutboxDispatcher(schema.DataSource, schema.Store, projection),
            async () => (await monitor.GetStatusAsync("notes", Ct)).Pending == 0, Ct);

        var n1 = await store.GetAsync("n1", Ct);
        Assert.Equal((3L, "third"), (n1!.Version, n1.Document.Text));
        Assert.Equal("other", (await store.GetAsync("n2", Ct))!.Document.Text);
        Assert.Null(await store.GetAsync("x1", Ct));
    }

    [Fact]
    public async Task With_a_postgres_store_the_documents_roll_back_with_a_failed_batch()
    {
        var store = await StoreAsync("doomed_notes");
        await AppendAsync("doomed", ("d1", 1, "one"), ("d2", 1, "two"));
        var failing = new FailingAfterProjection(new ReadModelProjection<Note>("doomed_notes", store, e => ToNote(e, "doomed")), schema.Store.Schema);
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, failing, new OutboxDispatcherOptions { MaxAttempts = 1 });
        var doomed = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE stream = 'doomed'");

        await Delivery.UntilAsync(dispatcher, async () =>
            await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_dead_letters l JOIN $schema.outbox o ON o.id = l.event_id WHERE l.name = 'doomed_notes' AND o.stream = 'doomed'") == doomed, Ct);

        // The projection did write (the batch saw its documents), and the rollback took the writes away.
        Assert.True(failing.DocumentsSeenInsideTheBatch >= doomed);
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.doomed_notes"));
    }

    /// <summary>Lets the projection write, counts what it wrote as seen from inside the batch's transaction, then fails the batch.</summary>
    private sealed class FailingAfterProjection(ReadModelProjection<Note> projection, string schemaName) : IOutboxSubscriber
    {
        public string Name => projection.Name;
        public long DocumentsSeenInsideTheBatch { get; private set; }

        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) =>
            HandleBatchAsync([outboxEvent], context, cancellationToken);

        public async Task HandleBatchAsync(IReadOnlyList<OutboxEvent> events, OutboxContext context, CancellationToken cancellationToken)
        {
            await projection.HandleBatchAsync(events, context, cancellationToken);
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM \"{schemaName}\".doomed_notes", context.Connection, context.Transaction);
            DocumentsSeenInsideTheBatch += (long)(await count.ExecuteScalarAsync(cancellationToken))!;
            throw new InvalidOperationException("the batch fails after the projection wrote");
        }
    }
}

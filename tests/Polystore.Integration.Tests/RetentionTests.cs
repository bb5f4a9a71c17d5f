using Npgsql;
using Polystore.Integration.Outbox;

namespace Polystore.Integration.Tests;

/// <summary>
/// Records deliveries in the delivery transaction (so the record is exactly what was checkpointed); optionally slow,
/// so its checkpoint trails the others'.
/// </summary>
internal sealed class TrailingSubscriber(OutboxSchema schema, string name, bool slow) : IOutboxSubscriber
{
    public string Name => name;

    public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
    {
        if (slow) await Task.Delay(Random.Shared.Next(0, 3), cancellationToken);
        await using var command = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".deliveries (subscriber, event_id) VALUES ($1, $2)", context.Connection, context.Transaction);
        command.Parameters.AddWithValue(Name);
        command.Parameters.AddWithValue(outboxEvent.Id);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>Retention under steady traffic: its own schema, so no other test's checkpoints hold it back.</summary>
public sealed class RetentionTrafficTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Under_steady_traffic_retention_keeps_the_outbox_flat_every_subscriber_gets_every_event_and_nothing_above_a_checkpoint_is_pruned()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        // Every row deleted is checked against the lowest checkpoint at that moment, by the server itself.
        await schema.ExecAsync("""
            CREATE TABLE $schema.prune_violations (event_id bigint, tx_id xid8, lowest_tx xid8, lowest_id bigint);
            CREATE FUNCTION $schema.check_prune() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN
              INSERT INTO $schema.prune_violations
              SELECT OLD.id, OLD.tx_id, c.tx_id, c.event_id
              FROM (SELECT tx_id, event_id FROM $schema.outbox_checkpoints ORDER BY tx_id, event_id LIMIT 1) c
              WHERE (OLD.tx_id, OLD.id) > (c.tx_id, c.event_id);
              RETURN OLD;
            END $f$;
            CREATE TRIGGER prune_check BEFORE DELETE ON $schema.outbox FOR EACH ROW EXECUTE FUNCTION $schema.check_prune();
            """);
        var subscribers = new[] { new TrailingSubscriber(schema, "fast", slow: false), new TrailingSubscriber(schema, "slow", slow: true), new TrailingSubscriber(schema, "batchy", slow: false) };
        var options = new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(20) };
        var dispatchers = subscribers.Select(s => new OutboxDispatcher(schema.DataSource, schema.Store, s, s.Name == "batchy" ? options with { BatchSize = 5 } : options)).ToList();
        // Every subscriber has its checkpoint before any event exists: retention must wait for each of them.
        foreach (var d in dispatchers) await d.ProcessAvailableAsync(Ct);

        var retention = new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.Zero, BatchSize = 20, Interval = TimeSpan.FromMilliseconds(10) });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = dispatchers.Select(d => Task.Run(() => d.RunAsync(stop.Token), Ct)).Append(Task.Run(() => retention.RunAsync(stop.Token), Ct)).ToList();

        const int rounds = 8, writers = 4, perWriter = 25;
        var highest = new List<long>();
        for (var round = 0; round < rounds; round++)
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, writers), new ParallelOptions { MaxDegreeOfParallelism = writers, CancellationToken = Ct }, async (w, ct) =>
            {
                for (var i = 0; i < perWriter; i++) await schema.AppendAsync(1, $"round{round}");
            });
            highest.Add(await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox"));
            // Bounded: once the subscribers pass them, the round's events go; the table does not grow round after round.
            await Eventually.UntilAsync(async () => await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox") == 0, $"retention emptied the outbox after round {round}", Ct);
        }
        await stop.CancelAsync();
        await Task.WhenAll(running);

        const int expected = rounds * writers * perWriter;
        foreach (var s in subscribers)
        {
            Assert.Equal(expected, await schema.ScalarAsync($"SELECT count(DISTINCT event_id) FROM $schema.deliveries WHERE subscriber = '{s.Name}'"));
            Assert.Equal(expected, await schema.ScalarAsync($"SELECT count(*) FROM $schema.deliveries WHERE subscriber = '{s.Name}'"));
        }
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.prune_violations"));
        Assert.All(highest, h => Assert.InRange(h, 0, writers * perWriter));
    }

}

public sealed class RetentionTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Young_events_and_events_a_subscriber_has_not_passed_are_kept_and_the_laggard_is_named()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        var subscriber = new RecordingSubscriber(schema, "ager");
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, subscriber);
        await dispatcher.ProcessAvailableAsync(Ct);
        await schema.AppendAsync(6, "ager");
        var mine = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE type = 'ager'");
        await Delivery.UntilAsync(dispatcher, async () => await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries WHERE subscriber = 'ager'") >= mine, Ct);

        // Younger than the age: kept.
        var hour = new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.FromHours(1), BatchSize = 2 });
        Assert.Equal(0, (await hour.PruneAsync(Ct)).Deleted);
        Assert.Equal(mine, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE type = 'ager'"));
        // An age older than the calendar keeps everything (and does not overflow the cutoff).
        var forever = new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.MaxValue });
        Assert.Equal(0, (await forever.PruneAsync(Ct)).Deleted);

        // A subscriber whose checkpoint is still at the start holds everything back, and is named.
        await schema.ExecAsync("INSERT INTO $schema.outbox_checkpoints (name) VALUES ('stuck')");
        var later = new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.FromHours(1), BatchSize = 2 }, new ShiftedTime(TimeSpan.FromHours(2)));
        var held = await later.PruneAsync(Ct);
        Assert.Equal((0L, "stuck", 0L), (held.Deleted, held.SlowestSubscriber, held.SlowestCheckpointEventId));

        // Once it goes, the events older than the age go, in batches of two.
        await schema.ExecAsync("DELETE FROM $schema.outbox_checkpoints WHERE name = 'stuck'");
        var report = await later.PruneAsync(Ct);
        Assert.True(report.Deleted >= mine, $"deleted {report.Deleted} of {mine}");
        Assert.True(report.Batches >= mine / 2);
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE type = 'ager'"));
    }

    [Fact]
    public void Bad_options_are_refused_naming_the_option()
    {
        Assert.Equal("BatchSize", Assert.Throws<ArgumentOutOfRangeException>(() => new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { BatchSize = 0 })).ParamName);
        Assert.Equal("MaxAge", Assert.Throws<ArgumentOutOfRangeException>(() => new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.FromSeconds(-1) })).ParamName);
        Assert.Equal("Interval", Assert.Throws<ArgumentOutOfRangeException>(() => new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { Interval = TimeSpan.Zero })).ParamName);
    }

    private sealed class ShiftedTime(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + by;
    }
}

using Npgsql;
using Polystore.Integration.Outbox;

namespace Polystore.Integration.Tests;

/// <summary>Fails the events it is told to, until told otherwise; records deliveries in the delivery transaction.</summary>
internal sealed class FlakySubscriber(OutboxSchema schema, string name) : IOutboxSubscriber
{
    public volatile Func<OutboxEvent, bool>? FailWhen;

    public string Name => name;

    public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
    {
        if (FailWhen?.Invoke(outboxEvent) == true) throw new InvalidOperationException($"cannot handle {outboxEvent.AggregateId}");
        await using var command = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".deliveries (subscriber, event_id) VALUES ($1, $2)", context.Connection, context.Transaction);
        command.Parameters.AddWithValue(Name);
        command.Parameters.AddWithValue(outboxEvent.Id);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

public sealed class DeadLetterTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly OutboxDispatcherOptions FailFast = new() { MaxAttempts = 1, RetryBaseDelay = TimeSpan.Zero, RetryMaxDelay = TimeSpan.Zero };

    private async Task<(FlakySubscriber Subscriber, List<long> Dead)> DeadLetterAsync(string name, int events, params int[] failing)
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        var subscriber = new FlakySubscriber(schema, name);
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, subscriber, FailFast);
        await dispatcher.ProcessAvailableAsync(Ct);
        await using (var connection = await schema.DataSource.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await schema.Store.AppendAsync(transaction, Enumerable.Range(0, events).Select(i => new OutboxMessage(name, $"{name}-{i}", i + 1, "dl.test", $$"""{"n":{{i}}}""")).ToList(), Ct);
            await transaction.CommitAsync(Ct);
        }
        var failingIds = failing.Select(i => $"{name}-{i}").ToHashSet();
        subscriber.FailWhen = e => failingIds.Contains(e.AggregateId);
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        await Delivery.UntilAsync(dispatcher, async () => (await monitor.GetStatusAsync(name, Ct)) is { Pending: 0, DeadLetters: var d } && d == failing.Length, Ct);
        var letters = await new OutboxDeadLetters(schema.DataSource, schema.Store).ListAsync(name, cancellationToken: Ct);
        return (subscriber, letters.Select(l => l.Event.Id).ToList());
    }

    [Fact]
    public async Task Dead_letters_are_listed_in_commit_order_with_the_whole_event_and_replayed_in_order_exactly_once()
    {
        var (subscriber, dead) = await DeadLetterAsync("replayer", 6, 1, 4);
        var letters = new OutboxDeadLetters(schema.DataSource, schema.Store);
        var listed = await letters.ListAsync("replayer", cancellationToken: Ct);
        Assert.Equal(["replayer-1", "replayer-4"], listed.Select(l => l.Event.AggregateId));
        Assert.All(listed, l => Assert.Equal(("replayer", "dl.test", 1), (l.Event.Stream, l.Event.Type, l.Attempts)));
        Assert.Equal(2, listed[0].Event.Version);
        Assert.Contains("cannot handle replayer-1", listed[0].LastError, StringComparison.Ordinal);
        Assert.Equal("""{"n": 1}""", (await letters.GetAsync("replayer", dead[0], Ct))!.Event.PayloadJson);

        // Retention may remove the outbox rows meanwhile: the dead letters keep their own copy.
        await new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.Zero }).PruneAsync(Ct);

        subscriber.FailWhen = null;
        var first = await letters.ReplayAsync(subscriber, null, "tester@ci", Ct);
        Assert.Equal(dead, first.Replayed);
        Assert.Empty(first.NotFound);
        var order = await schema.ScalarAsync($"SELECT count(*) FROM $schema.deliveries WHERE subscriber = 'replayer' AND event_id = {dead[1]} AND seq > (SELECT seq FROM $schema.deliveries WHERE subscriber = 'replayer' AND event_id = {dead[0]})");
        Assert.Equal(1, order);

        // Replaying again, twice at once, delivers nothing more: each id is reported as not found.
        var again = await Task.WhenAll(letters.ReplayAsync(subscriber, dead, "tester@ci", Ct), letters.ReplayAsync(subscriber, dead, "other@ci", Ct));
        Assert.All(again, r => Assert.Empty(r.Replayed));
        Assert.All(again, r => Assert.Equal(dead, r.NotFound));
        foreach (var id in dead)
            Assert.Equal(1, await schema.ScalarAsync($"SELECT count(*) FROM $schema.deliveries WHERE subscriber = 'replayer' AND event_id = {id}"));
        Assert.Empty(await letters.ListAsync("replayer", cancellationToken: Ct));
        var log = await letters.GetLogAsync("replayer", cancellationToken: Ct);
        Assert.Equal(dead, log.Select(l => l.EventId));
        Assert.All(log, l => Assert.Equal(("replayed", "tester@ci"), (l.Action, l.Actor)));
        Assert.All(log, l => Assert.False(string.IsNullOrEmpty(l.DatabaseUser)));
    }

    [Fact]
    public async Task Concurrent_replays_of_the_same_dead_letters_deliver_each_once()
    {
        var (subscriber, dead) = await DeadLetterAsync("racer", 8, 0, 2, 3, 5, 7);
        subscriber.FailWhen = null;
        var letters = new OutboxDeadLetters(schema.DataSource, schema.Store);
        var reports = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Task.Run(() => letters.ReplayAsync(subscriber, i % 2 == 0 ? null : dead, $"racer{i}", Ct), Ct)));
        Assert.Equal(dead, reports.SelectMany(r => r.Replayed).Order());
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM (SELECT event_id FROM $schema.deliveries WHERE subscriber = 'racer' GROUP BY event_id HAVING count(*) > 1) d"));
        Assert.Equal(8, await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'racer' AND o.stream = 'racer'"));
    }

    [Fact]
    public async Task A_replay_that_fails_again_keeps_the_dead_letter_and_those_after_it_and_a_drop_is_logged()
    {
        var (subscriber, dead) = await DeadLetterAsync("stubborn", 4, 1, 2);
        var letters = new OutboxDeadLetters(schema.DataSource, schema.Store);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => letters.ReplayAsync(subscriber, null, "tester", Ct));
        Assert.Contains("stubborn-1", e.Message, StringComparison.Ordinal);
        var still = await letters.ListAsync("stubborn", cancellationToken: Ct);
        Assert.Equal(dead, still.Select(l => l.Event.Id));
        Assert.Equal(2, still[0].Attempts);
        Assert.Equal(1, still[1].Attempts);

        var dropped = await letters.DropAsync("stubborn", [dead[0], 999_999_999], "alice", Ct);
        Assert.Equal([dead[0]], dropped);
        Assert.Equal([dead[1]], (await letters.ListAsync("stubborn", cancellationToken: Ct)).Select(l => l.Event.Id));
        var log = Assert.Single(await letters.GetLogAsync("stubborn", dead[0], Ct));
        Assert.Equal(("dropped", "alice"), (log.Action, log.Actor));
        Assert.Empty(await letters.DropAsync("stubborn", [dead[0]], "alice", Ct));
        Assert.Equal(0, await schema.ScalarAsync($"SELECT count(*) FROM $schema.deliveries WHERE event_id = {dead[0]}"));
    }
}

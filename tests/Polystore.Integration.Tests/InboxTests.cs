using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Integration.Tests;

public sealed class InboxTests(OutboxSchema schema, RedisFixture redis) : IClassFixture<OutboxSchema>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_consumer_killed_mid_batch_leaves_pending_entries_that_another_claims_and_each_event_takes_effect_once()
    {
        // The relay writes 120 outbox events to a stream; each entry carries its event id.
        const int events = 120;
        await schema.AppendAsync(events, "inbox.test");
        var relay = new RedisStreamRelay(redis.Db, TestServers.UniqueName("inbox"));
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, relay);
        await Delivery.UntilAsync(dispatcher, async () => await redis.Db.StreamLengthAsync(relay.StreamKey) >= events, Ct);

        var inbox = new PostgresInbox(schema.DataSource, schema.Store.Schema, "billing");
        await inbox.EnsureCreatedAsync(Ct);
        // The consumer's own effect: a plain table, no unique key, so a second application would show as a second row.
        await schema.ExecAsync("CREATE TABLE $schema.billed (event_id bigint NOT NULL, entry text NOT NULL)");
        Task Apply(RelayedEvent e, NpgsqlTransaction tx, CancellationToken ct)
        {
            var insert = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".billed VALUES ($1, $2)", tx.Connection, tx);
            insert.Parameters.AddWithValue(e.EventId);
            insert.Parameters.AddWithValue(e.EntryId);
            return insert.ExecuteNonQueryAsync(ct).ContinueWith(t => { insert.Dispose(); return t; }, TaskScheduler.Default).Unwrap();
        }

        var group = "billing";
        var first = new RedisStreamConsumer(redis.Db, relay.StreamKey, group, "worker-1", batchSize: 40, claimAfter: TimeSpan.FromMilliseconds(200));
        await first.EnsureGroupAsync();
        await first.EnsureGroupAsync(); // idempotent

        // worker-1 handles one batch fully, then in the second commits half of it and is killed before acknowledging.
        Assert.Equal(40, await first.ConsumeOnceAsync((batch, ct) => inbox.ProcessAsync(batch, Apply, ct), Ct));
        using var kill = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.ConsumeOnceAsync(async (batch, ct) =>
        {
            await inbox.ProcessAsync(batch.Take(batch.Count / 2).ToList(), Apply, ct);
            await kill.CancelAsync();
        }, kill.Token));
        var pending = await redis.Db.StreamPendingAsync(relay.StreamKey, group);
        Assert.Equal(40, pending.PendingMessageCount);
        Assert.Equal(60, await schema.ScalarAsync("SELECT count(*) FROM $schema.billed"));

        // worker-2 claims the abandoned entries once they are idle long enough, then reads the rest.
        var second = new RedisStreamConsumer(redis.Db, relay.StreamKey, group, "worker-2", batchSize: 25, claimAfter: TimeSpan.FromMilliseconds(200));
        var applied = 0;
        await Eventually.UntilAsync(async () =>
        {
            await second.ConsumeOnceAsync(async (batch, ct) => applied += await inbox.ProcessAsync(batch, Apply, ct), Ct);
            return (await redis.Db.StreamPendingAsync(relay.StreamKey, group)).PendingMessageCount == 0
                && await schema.ScalarAsync("SELECT count(DISTINCT event_id) FROM $schema.billed") == events;
        }, "worker-2 took over and finished the stream", Ct);

        Assert.Equal(events, await schema.ScalarAsync("SELECT count(*) FROM $schema.billed"));
        Assert.Equal(events, await schema.ScalarAsync("SELECT count(DISTINCT event_id) FROM $schema.billed"));
        Assert.Equal(events - 60, applied);
        // Every relayed event id went through the inbox once.
        Assert.Equal(events, await schema.ScalarAsync("SELECT count(*) FROM $schema.inbox WHERE consumer = 'billing'"));
        Assert.Equal(0, await inbox.PruneAsync(TimeSpan.FromHours(1), Ct));
        Assert.Equal(events, await inbox.PruneAsync(TimeSpan.Zero, Ct));
        await redis.Db.KeyDeleteAsync(relay.StreamKey);
    }
}

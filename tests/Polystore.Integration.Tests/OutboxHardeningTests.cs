using System.Text.Json;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Integration.Transactions;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Integration.Tests;

public sealed record RegionDoc(string Region);

/// <summary>A schema name QuotePlain accepts (57-63 chars) makes the NOTIFY channel name longer than PostgreSQL allows.</summary>
public sealed class LongSchemaOutboxTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_outbox_in_a_valid_63_character_schema_accepts_appends()
    {
        var name = (TestServers.UniqueName("ob") + new string('x', 63)).ToLowerInvariant()[..63];
        await using var sources = Polystore.Postgres.PostgresDataSources.Create(TestServers.Postgres);
        var store = new OutboxStore(name); // accepted: a plain identifier of 63 characters
        try
        {
            await store.EnsureCreatedAsync(sources.Primary, Ct);
            await using var connection = await sources.Primary.OpenConnectionAsync(Ct);
            await using var transaction = await connection.BeginTransactionAsync(Ct);
            // Throws PostgresException 22023: channel name too long.
            await store.AppendAsync(transaction, new OutboxMessage("s", "a", 1, "t", "{}"), Ct);
            await transaction.CommitAsync(Ct);
        }
        finally
        {
            await using var connection = await sources.Primary.OpenConnectionAsync(Ct);
            await using var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{name}\" CASCADE", connection);
            await drop.ExecuteNonQueryAsync(Ct);
        }
    }
}

/// <summary>ProjectionRebuilder builds the staging table with default JSON options, not the live store's.</summary>
public sealed class RebuildJsonShapeTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_rebuild_keeps_the_live_stores_json_shape()
    {
        var pascal = new JsonSerializerOptions { PropertyNamingPolicy = null };
        var live = new PostgresJsonbReadModelStore<RegionDoc>(schema.DataSource, schema.Store.Schema, "docs", pascal);
        await live.EnsureCreatedAsync(Ct);
        await using (var connection = await schema.DataSource.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await schema.Store.AppendAsync(transaction, new OutboxMessage("doc", "d1", 1, "doc.set", """{"Region":"eu"}"""), Ct);
            await transaction.CommitAsync(Ct);
        }
        IOutboxSubscriber Projection(IReadModelStore<RegionDoc> store, string name) =>
            new ReadModelProjection<RegionDoc>(name, store, e => JsonSerializer.Deserialize<RegionDoc>(e.PayloadJson, pascal));
        await Delivery.UntilAsync(new OutboxDispatcher(schema.DataSource, schema.Store, Projection(live, "docs")),
            async () => (await live.GetVersionsAsync(Ct)).Count == 1, Ct);
        Assert.Equal([new KeyValuePair<string, long>("eu", 1)], await live.CountByAsync("Region", Ct));

        await ProjectionRebuilder.RebuildAsync(schema.DataSource, schema.Store, live, "docs", Projection, Ct);

        // After the rebuild the documents are stored as {"region":"eu"} (web defaults): the field is gone.
        Assert.Equal([new KeyValuePair<string, long>("eu", 1)], await live.CountByAsync("Region", Ct));
    }
}

/// <summary>A rebuild that is cancelled (or fails) leaves its temporary checkpoint behind, and retention stops for good.</summary>
public sealed class FailedRebuildTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_cancelled_rebuild_does_not_hold_retention_back()
    {
        var live = new PostgresJsonbReadModelStore<RegionDoc>(schema.DataSource, schema.Store.Schema, "docs");
        await live.EnsureCreatedAsync(Ct);
        await schema.AppendAsync(20, "doc.set");
        IOutboxSubscriber Projection(IReadModelStore<RegionDoc> store, string name) =>
            new ReadModelProjection<RegionDoc>(name, store, _ => new RegionDoc("eu"));
        var liveDispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, Projection(live, "docs"));
        await Delivery.UntilAsync(liveDispatcher, async () => (await new OutboxMonitor(schema.DataSource, schema.Store).GetStatusAsync("docs", Ct)).Pending == 0, Ct);

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ProjectionRebuilder.RebuildAsync(schema.DataSource, schema.Store, live, "docs",
            (store, name) => new ReadModelProjection<RegionDoc>(name, store, _ => { cancel.Cancel(); return new RegionDoc("eu"); }), cancel.Token));

        // Every event is delivered to the only real subscriber: with MaxAge zero they should all go.
        var report = await new OutboxRetention(schema.DataSource, schema.Store, new OutboxRetentionOptions { MaxAge = TimeSpan.Zero }).PruneAsync(Ct);
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_checkpoints WHERE name LIKE '%@rebuild'"));
        Assert.Equal(20, report.Deleted);
    }
}

/// <summary>MultiStoreTransaction after PostgreSQL committed, when a participant's commit throws something other than a store failure.</summary>
public sealed class PartialCommitTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed class Participant(Func<CancellationToken, Task> commit) : ITransactionParticipant
    {
        public string Store => "mongodb";
        public bool Committed { get; private set; }
        public async Task CommitAsync(CancellationToken cancellationToken)
        {
            await commit(cancellationToken);
            Committed = true;
        }
        public Task AbortAsync() => Task.CompletedTask;
        public bool IsStoreFailure(Exception exception) => false;
        public void Dispose() { }
    }

    [Fact]
    public async Task A_participant_failing_with_any_exception_after_postgres_committed_is_reported_as_partial_and_compensated()
    {
        await schema.ExecAsync("CREATE TABLE IF NOT EXISTS $schema.tm_any (v text)");
        var compensated = false;
        var thrown = await Record.ExceptionAsync(() => new TransactionManager(schema.DataSource).ExecuteAsync(async tx =>
        {
            await using var insert = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".tm_any (v) VALUES ('kept')", tx.Postgres, tx.PostgresTransaction);
            await insert.ExecuteNonQueryAsync(Ct);
            await tx.EnlistAsync("mongodb", _ => Task.FromResult(new Participant(_ => throw new NotSupportedException("not a store error"))), Ct);
            tx.AddCompensation("undo", _ => { compensated = true; return Task.CompletedTask; });
        }, Ct));

        Assert.Equal(1, await schema.ScalarAsync("SELECT count(*) FROM $schema.tm_any")); // PostgreSQL did commit
        var partial = Assert.IsType<PartialCommitException>(thrown);
        Assert.Equal("mongodb", partial.Report.Failed);
        Assert.Equal(["postgres"], partial.Report.Committed);
        Assert.IsType<NotSupportedException>(partial.InnerException);
        Assert.True(compensated);
    }

    [Fact]
    public async Task Once_postgres_has_committed_the_callers_token_no_longer_stops_the_other_stores()
    {
        await schema.ExecAsync("CREATE TABLE IF NOT EXISTS $schema.tm_token (v text)");
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        Participant? participant = null;
        var report = await new TransactionManager(schema.DataSource).ExecuteAsync(async tx =>
        {
            await using var insert = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".tm_token (v) VALUES ('kept')", tx.Postgres, tx.PostgresTransaction);
            await insert.ExecuteNonQueryAsync(Ct);
            participant = await tx.EnlistAsync("mongodb", _ => Task.FromResult(new Participant(token =>
            {
                caller.Cancel(); // the caller gives up between PostgreSQL's commit and this one
                token.ThrowIfCancellationRequested();
                return Task.CompletedTask;
            })), Ct);
        }, caller.Token);

        Assert.True(participant!.Committed);
        Assert.Equal(["postgres", "mongodb"], report.Committed);
    }
}

/// <summary>RedisStreamRelay's subscriber name is fixed: two relays on one outbox share a checkpoint.</summary>
public sealed class RelayNameTests(OutboxSchema schema, RedisFixture redis) : IClassFixture<OutboxSchema>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Two_relays_to_different_streams_each_get_every_event()
    {
        var orders = new RedisStreamRelay(redis.Db, TestServers.UniqueName("orders"));
        var audit = new RedisStreamRelay(redis.Db, TestServers.UniqueName("audit"));
        try
        {
            await schema.AppendAsync(3, "relay.test");
            var first = new OutboxDispatcher(schema.DataSource, schema.Store, orders);
            await Delivery.UntilAsync(first, async () => await redis.Db.StreamLengthAsync(orders.StreamKey) == 3, Ct);
            await new OutboxDispatcher(schema.DataSource, schema.Store, audit).ProcessAvailableAsync(Ct);
            Assert.NotEqual(orders.Name, audit.Name);
            Assert.Equal(3, await redis.Db.StreamLengthAsync(audit.StreamKey));
        }
        finally
        {
            await redis.Db.KeyDeleteAsync([orders.StreamKey, audit.StreamKey]);
        }
    }
}

/// <summary>RedisStreamRelay sets its de-duplication marker before XADD: an XADD that fails leaves the marker, and the retry drops the event.</summary>
public sealed class RelayRetryTests(OutboxSchema schema, RedisFixture redis) : IClassFixture<OutboxSchema>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_event_whose_xadd_failed_is_relayed_on_the_retry()
    {
        var relay = new RedisStreamRelay(redis.Db, TestServers.UniqueName("events"));
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, relay,
            new OutboxDispatcherOptions { MaxAttempts = 10, RetryBaseDelay = TimeSpan.Zero, RetryMaxDelay = TimeSpan.Zero });
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        try
        {
            // The XADD fails (here: the key holds a string; in production: OOM, a failover mid-script, ...).
            await redis.Db.StringSetAsync(relay.StreamKey, "not a stream");
            await schema.AppendAsync(1, "relay.test");
            // The dispatcher's batch attempt fails; its one-at-a-time retry finds the marker the failed script left and
            // returns without XADD, so the event is checkpointed as delivered.
            await Delivery.UntilAsync(dispatcher, async () => (await monitor.GetStatusAsync(relay.Name, Ct)).Pending == 0, Ct);
            await redis.Db.KeyDeleteAsync(relay.StreamKey);
            await dispatcher.ProcessAvailableAsync(Ct);

            var status = await monitor.GetStatusAsync(relay.Name, Ct);
            var relayed = await redis.Db.StreamLengthAsync(relay.StreamKey);
            // The event must be somewhere: still pending, dead-lettered, or in the stream.
            Assert.True(status.Pending > 0 || status.DeadLetters > 0 || relayed == 1,
                $"pending {status.Pending}, dead letters {status.DeadLetters}, stream length {relayed}");
        }
        finally
        {
            await redis.Db.KeyDeleteAsync(relay.StreamKey);
        }
    }
}

/// <summary>OutboxMonitor.MaskQuery leaves dollar-quoted and escape-string literals of the horizon holder's statement readable.</summary>
public sealed class HorizonHolderMaskTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    [Trait("Requires", "DirectPostgres")]
    public async Task The_horizon_holders_literals_are_masked()
    {
        await using var holder = await schema.DataSource.OpenConnectionAsync(Ct);
        var application = TestServers.UniqueName("mask");
        await using (var name = new NpgsqlCommand($"SET application_name = '{application}'", holder)) await name.ExecuteNonQueryAsync(Ct);
        await using var transaction = await holder.BeginTransactionAsync(Ct);
        await using (var write = new NpgsqlCommand("SELECT pg_current_xact_id(), $$dollar-secret$$, E'it\\'s escape-secret'", holder, transaction))
            await write.ExecuteNonQueryAsync(Ct);
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        OutboxHorizonHolder? mine = null;
        await Eventually.UntilAsync(async () =>
        {
            mine = (await monitor.GetHorizonHoldersAsync(TimeSpan.Zero, 100, Ct)).FirstOrDefault(h => h.ApplicationName == application);
            return mine is not null;
        }, "the holder is listed", Ct);
        Assert.DoesNotContain("dollar-secret", mine!.Query, StringComparison.Ordinal);
        Assert.DoesNotContain("escape-secret", mine.Query, StringComparison.Ordinal);
    }
}

/// <summary>RedisStreamConsumer: one entry it cannot parse blocks the whole group once it is claimed.</summary>
public sealed class MalformedStreamEntryTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_foreign_entry_does_not_stop_the_consumer_for_good()
    {
        var stream = "{" + TestServers.UniqueName("poison") + "}";
        try
        {
            var consumer = new RedisStreamConsumer(redis.Db, stream, "g", "c1", batchSize: 10, claimAfter: TimeSpan.Zero);
            await consumer.EnsureGroupAsync();
            await redis.Db.StreamAddAsync(stream, [new NameValueEntry("hello", "world")]);
            await redis.Db.StreamAddAsync(stream, [new("event_id", 1), new("type", "t"), new("stream", "s"), new("aggregate_id", "a"), new("version", 1), new("payload", "{}")]);
            var handled = new List<long>();
            for (var i = 0; i < 5; i++)
            {
                try { await consumer.ConsumeOnceAsync((events, _) => { handled.AddRange(events.Select(e => e.EventId)); return Task.CompletedTask; }, Ct); }
                catch (InvalidDataException) { }
            }
            Assert.Equal([1L], handled);
            var setAside = Assert.Single(await redis.Db.StreamRangeAsync(consumer.MalformedStreamKey));
            Assert.Equal("world", (string?)setAside["hello"]);
            Assert.Equal(0, (await redis.Db.StreamPendingAsync(stream, "g")).PendingMessageCount);
        }
        finally
        {
            await redis.Db.KeyDeleteAsync([stream, $"{stream}:malformed"]);
        }
    }
}

/// <summary>A compensation that throws an exception outside MultiStoreTransaction's filter hides the partial commit.</summary>
public sealed class CompensationFailureTests(OutboxSchema schema, RedisFixture redis) : IClassFixture<OutboxSchema>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_throwing_compensation_still_reports_the_partial_commit_and_runs_the_other_compensations()
    {
        await schema.ExecAsync("CREATE TABLE IF NOT EXISTS $schema.tm_comp (v text)");
        var guard = TestServers.UniqueName("tm-guard");
        var firstUndone = false;
        var thrown = await Record.ExceptionAsync(() => new TransactionManager(schema.DataSource, redis.Db).ExecuteAsync(async tx =>
        {
            await using var insert = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".tm_comp (v) VALUES ('kept')", tx.Postgres, tx.PostgresTransaction);
            await insert.ExecuteNonQueryAsync(Ct);
            tx.AddCompensation("undo local", _ => { firstUndone = true; return Task.CompletedTask; });
            tx.AddCompensation("undo remote", _ => throw new HttpRequestException("the payment API is down"));
            tx.RedisTransaction.AddCondition(Condition.KeyNotExists(guard));
            _ = tx.RedisTransaction.StringSetAsync(guard, "queued");
            await redis.Db.StringSetAsync(guard, "someone else"); // EXEC will be refused
        }, Ct));
        await redis.Db.KeyDeleteAsync(guard);

        Assert.Equal(1, await schema.ScalarAsync("SELECT count(*) FROM $schema.tm_comp")); // PostgreSQL committed
        var partial = Assert.IsType<PartialCommitException>(thrown);
        Assert.Single(partial.Report.CompensationsFailed);
        Assert.True(firstUndone);
    }
}

public sealed class InboxPruneTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Pruning_with_the_largest_age_forgets_nothing_and_does_not_throw()
    {
        var inbox = new PostgresInbox(schema.DataSource, schema.Store.Schema, "c");
        await inbox.EnsureCreatedAsync(Ct);
        Assert.Equal(0, await inbox.PruneAsync(TimeSpan.MaxValue, Ct));
    }
}

public sealed class QueryMaskingTests
{
    [Theory]
    [InlineData("SELECT 'secret', 1", "SELECT '…', 1")]
    [InlineData("SELECT 'it''s secret'", "SELECT '…'")]
    [InlineData("SELECT E'it\\'s secret', 2", "SELECT E'…', 2")]
    [InlineData("SELECT $$secret$$, $1", "SELECT '…', $1")]
    [InlineData("SELECT $tag$a $$ secret$tag$ FROM t", "SELECT '…' FROM t")]
    [InlineData("UPDATE t SET a = 'unterminated secret", "UPDATE t SET a = '…'")]
    [InlineData("SELECT   a,\n\tb", "SELECT a, b")]
    [InlineData("SELECT a$b$ FROM t WHERE x = 'y'", "SELECT a$b$ FROM t WHERE x = '…'")]
    public void Literals_of_every_quoting_style_are_masked(string query, string masked) =>
        Assert.Equal(masked, OutboxMonitor.MaskQuery(query));

    [Fact]
    public void A_long_query_is_cut_to_120_characters()
    {
        var masked = OutboxMonitor.MaskQuery("SELECT " + new string('x', 500));
        Assert.Equal(120, masked.Length);
        Assert.EndsWith("…", masked, StringComparison.Ordinal);
    }
}

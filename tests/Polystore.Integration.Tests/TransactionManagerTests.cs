using MongoDB.Driver;
using Npgsql;
using Polystore.Integration.Mongo;
using Polystore.Integration.Transactions;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

public sealed class TransactionManagerTests(OutboxSchema schema, RedisFixture redis) : IClassFixture<OutboxSchema>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<string> TableAsync()
    {
        var table = TestServers.UniqueName("tm");
        await schema.ExecAsync($"CREATE TABLE $schema.{table} (v text)");
        return table;
    }

    private static async Task InsertAsync(MultiStoreTransaction tx, string schemaName, string table, string value)
    {
        await using var insert = new NpgsqlCommand($"INSERT INTO \"{schemaName}\".{table} (v) VALUES ($1)", tx.Postgres, tx.PostgresTransaction);
        insert.Parameters.AddWithValue(value);
        await insert.ExecuteNonQueryAsync(Ct);
    }

    [Fact]
    public async Task Success_commits_postgres()
    {
        var table = await TableAsync();
        var report = await new TransactionManager(schema.DataSource, redis.Db).ExecuteAsync(tx => InsertAsync(tx, schema.Store.Schema, table, "ok"), Ct);
        Assert.Equal(["postgres"], report.Committed);
        Assert.Equal(1, await schema.ScalarAsync($"SELECT count(*) FROM $schema.{table}"));
    }

    [Fact]
    public async Task A_failure_inside_rolls_back_and_runs_the_compensations()
    {
        var table = await TableAsync();
        var key = TestServers.UniqueName("tm-key");
        await Assert.ThrowsAsync<InvalidOperationException>(() => new TransactionManager(schema.DataSource, redis.Db).ExecuteAsync(async tx =>
        {
            await InsertAsync(tx, schema.Store.Schema, table, "doomed");
            await tx.Redis!.StringSetAsync(key, "written");
            tx.AddCompensation($"delete {key}", _ => tx.Redis.KeyDeleteAsync(key));
            throw new InvalidOperationException("business rule failed");
        }, Ct));
        Assert.Equal(0, await schema.ScalarAsync($"SELECT count(*) FROM $schema.{table}"));
        Assert.False(await redis.Db.KeyExistsAsync(key));
    }

    [Fact]
    public async Task Redis_failing_after_postgres_committed_is_reported_as_a_partial_commit()
    {
        var table = await TableAsync();
        var written = TestServers.UniqueName("tm-key");
        var guard = TestServers.UniqueName("tm-guard");
        var manager = new TransactionManager(schema.DataSource, redis.Db);

        var e = await Assert.ThrowsAsync<PartialCommitException>(() => manager.ExecuteAsync(async tx =>
        {
            await InsertAsync(tx, schema.Store.Schema, table, "kept");
            await tx.Redis!.StringSetAsync(written, "direct write");
            tx.AddCompensation($"delete {written}", _ => tx.Redis.KeyDeleteAsync(written));
            tx.RedisTransaction.AddCondition(StackExchange.Redis.Condition.KeyNotExists(guard));
            _ = tx.RedisTransaction.StringSetAsync(guard, "queued");
            // Another client claims the guard key before the commit: EXEC is refused.
            await redis.Db.StringSetAsync(guard, "someone else");
        }, Ct));

        Assert.True(e.Report.IsPartial);
        Assert.Equal(["postgres"], e.Report.Committed);
        Assert.Equal("redis", e.Report.Failed);
        Assert.Equal([$"delete {written}"], e.Report.CompensationsRun);
        Assert.Equal(1, await schema.ScalarAsync($"SELECT count(*) FROM $schema.{table}"));
        Assert.False(await redis.Db.KeyExistsAsync(written));
        Assert.Equal("someone else", await redis.Db.StringGetAsync(guard));
        Assert.StartsWith("PARTIAL COMMIT: committed postgres; redis failed", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_mongo_before_the_commit_rolls_everything_back()
    {
        var table = await TableAsync();
        // No MongoDB can run here: point the client at a closed port with a short selection timeout.
        var unreachable = new MongoClient(new MongoClientSettings
        {
            Server = new MongoServerAddress("127.0.0.1", 1),
            ServerSelectionTimeout = TimeSpan.FromMilliseconds(300),
            ConnectTimeout = TimeSpan.FromMilliseconds(300),
        });
        var manager = new TransactionManager(schema.DataSource, redis.Db);

        await Assert.ThrowsAsync<TimeoutException>(() => manager.ExecuteAsync(async tx =>
        {
            await InsertAsync(tx, schema.Store.Schema, table, "doomed");
            var session = await tx.GetMongoSessionAsync(unreachable, Ct);
            await unreachable.GetDatabase("polystore").GetCollection<MongoDB.Bson.BsonDocument>("t").InsertOneAsync(session, new MongoDB.Bson.BsonDocument("a", 1), cancellationToken: Ct);
        }, Ct));

        Assert.Equal(0, await schema.ScalarAsync($"SELECT count(*) FROM $schema.{table}"));
    }
}

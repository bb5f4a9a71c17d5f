using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Integration.Mongo;
using Polystore.Integration.Projections;
using Polystore.Mongo;
using Polystore.Samples.Users;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>The read-model contract, written once and run against every backend.</summary>
public abstract class ReadModelStoreContract
{
    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>The store under test, or null with the reason it cannot run here.</summary>
    protected abstract Task<(IReadModelStore<UserProfile>? Store, string? SkipReason)> CreateAsync();

    private async Task<IReadModelStore<UserProfile>> StoreAsync()
    {
        var (store, reason) = await CreateAsync();
        if (store is null) Assert.Skip(reason!);
        await store!.EnsureCreatedAsync(Ct);
        return store;
    }

    protected static UserProfile Profile(string name, long version) => new(7, "a@example.com", name, "eu", version, DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task A_newer_version_replaces_and_an_older_or_equal_one_is_ignored()
    {
        var store = await StoreAsync();
        Assert.True(await store.UpsertIfNewerAsync("7", 2, Profile("v2", 2), Ct));
        Assert.False(await store.UpsertIfNewerAsync("7", 1, Profile("v1", 1), Ct));
        Assert.False(await store.UpsertIfNewerAsync("7", 2, Profile("v2 again", 2), Ct));
        Assert.True(await store.UpsertIfNewerAsync("7", 3, Profile("v3", 3), Ct));
        var stored = await store.GetAsync("7", Ct);
        Assert.Equal((3L, "v3"), (stored!.Version, stored.Document.Name));
        Assert.Equal(3L, (await store.GetVersionsAsync(Ct))["7"]);
        Assert.Null(await store.GetAsync("missing", Ct));
    }

    [Fact]
    public async Task Documents_are_counted_by_a_field_most_first_and_bad_field_names_are_refused()
    {
        var store = await StoreAsync();
        var regions = new[] { "north", "north", "south", "north", "east", "south" };
        for (var i = 0; i < regions.Length; i++)
            await store.UpsertIfNewerAsync($"r{i}", 1, new UserProfile(i, $"{i}@example.com", "n", regions[i], 1, DateTimeOffset.UnixEpoch), Ct);
        var counts = await store.CountByAsync("region", Ct);
        // Other tests of the class share the table; they use other regions.
        Assert.Equal([new("north", 3L), new("south", 2L), new("east", 1L)], counts.Where(c => c.Key is "north" or "south" or "east").ToList());
        await Assert.ThrowsAsync<ArgumentException>(() => store.CountByAsync("region'; DROP TABLE x; --", Ct));
    }

    [Fact]
    public async Task A_batch_keeps_the_newest_version_of_each_id_and_never_overwrites_a_newer_one()
    {
        var store = await StoreAsync();
        Assert.True(await store.UpsertIfNewerAsync("b1", 5, Profile("stored v5", 5), Ct));
        await store.UpsertManyIfNewerAsync(
            [new("b1", 4, Profile("b1 v4", 4)), new("b2", 1, Profile("b2 v1", 1)), new("b2", 3, Profile("b2 v3", 3)), new("b2", 2, Profile("b2 v2", 2))], Ct);
        var b1 = await store.GetAsync("b1", Ct);
        var b2 = await store.GetAsync("b2", Ct);
        Assert.Equal((5L, "stored v5"), (b1!.Version, b1.Document.Name));
        Assert.Equal((3L, "b2 v3"), (b2!.Version, b2.Document.Name));
    }

    [Fact]
    public async Task Concurrent_writers_of_every_version_leave_the_newest()
    {
        var store = await StoreAsync();
        await Parallel.ForEachAsync(Enumerable.Range(1, 64).OrderBy(_ => Random.Shared.Next()), new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = Ct },
            async (v, ct) => await store.UpsertIfNewerAsync("race", v, Profile($"v{v}", v), ct));
        var stored = await store.GetAsync("race", Ct);
        Assert.Equal((64L, "v64"), (stored!.Version, stored.Document.Name));
    }
}

public sealed class PostgresJsonbReadModelStoreTests(OutboxSchema schema) : ReadModelStoreContract, IClassFixture<OutboxSchema>
{
    protected override Task<(IReadModelStore<UserProfile>? Store, string? SkipReason)> CreateAsync() =>
        Task.FromResult<(IReadModelStore<UserProfile>?, string?)>((new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "profiles"), null));

    [Fact]
    public async Task Inside_a_transaction_a_batch_commits_or_rolls_back_with_it()
    {
        var store = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "profiles");
        await store.EnsureCreatedAsync(Ct);
        await using var connection = await schema.DataSource.OpenConnectionAsync(Ct);
        await using (var rolledBack = await connection.BeginTransactionAsync(Ct))
        {
            await store.UpsertManyIfNewerAsync([new("tx", 1, Profile("rolled back", 1))], rolledBack, Ct);
            await rolledBack.RollbackAsync(Ct);
        }
        Assert.Null(await store.GetAsync("tx", Ct));

        await using (var committed = await connection.BeginTransactionAsync(Ct))
        {
            await store.UpsertManyIfNewerAsync([new("tx", 1, Profile("v1", 1)), new("tx", 2, Profile("committed", 2))], committed, Ct);
            Assert.Null(await store.GetAsync("tx", Ct)); // not visible outside the transaction yet
            await committed.CommitAsync(Ct);
        }
        var stored = await store.GetAsync("tx", Ct);
        Assert.Equal((2L, "committed"), (stored!.Version, stored.Document.Name));
    }
}

public sealed class MongoReadModelStoreTests : ReadModelStoreContract
{
    protected override Task<(IReadModelStore<UserProfile>? Store, string? SkipReason)> CreateAsync()
    {
        if (TestServers.Mongo is not { } settings)
            return Task.FromResult<(IReadModelStore<UserProfile>?, string?)>((null, "no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)"));
        var database = new MongoClient(MongoDriverSettings.Build(settings)).GetDatabase(settings.Connection.Database);
        return Task.FromResult<(IReadModelStore<UserProfile>?, string?)>((new MongoReadModelStore<UserProfile>(database, TestServers.UniqueName("profiles")), null));
    }

    [Fact]
    public void Counting_by_a_field_is_a_group_and_sort_pipeline()
    {
        var pipeline = MongoReadModelStore<UserProfile>.CountByPipeline("region");
        Assert.Equal(
            [BsonDocument.Parse("{ $group: { _id: '$doc.region', count: { $sum: 1 } } }"), BsonDocument.Parse("{ $sort: { count: -1, _id: 1 } }")],
            pipeline);
        Assert.Throws<ArgumentException>(() => MongoReadModelStore<UserProfile>.CountByPipeline("$where"));
    }

    [Fact]
    public void The_write_is_a_version_guarded_upsert()
    {
        var store = new MongoReadModelStore<UserProfile>(new MongoClient("mongodb://127.0.0.1:1").GetDatabase("polystore"), "user_profiles");
        var at = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        var (filter, update) = store.BuildWrite("7", 3, new UserProfile(7, "a@example.com", "Ada", "eu", 3, DateTimeOffset.UnixEpoch), at);
        Assert.Equal(BsonDocument.Parse("{ _id: '7', version: { $lt: NumberLong(3) } }"), filter);
        Assert.Equal(BsonDocument.Parse("""
            { $set: { version: NumberLong(3),
                      doc: { id: 7, email: 'a@example.com', name: 'Ada', region: 'eu', version: 3, created_at: '1970-01-01T00:00:00+00:00' },
                      updated_at: ISODate('2026-01-02T03:04:05Z') } }
            """), update);
    }
}

using Polystore.Integration.Cqrs;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Redis;
using Polystore.Samples.Users;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Integration.Tests;

public sealed class RedisFixture : IAsyncLifetime
{
    public IConnectionMultiplexer Muxer { get; private set; } = null!;
    public IDatabase Db => Muxer.GetDatabase();
    public async ValueTask InitializeAsync() => Muxer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
    public async ValueTask DisposeAsync() => await Muxer.DisposeAsync();
}

public sealed class CqrsTests(OutboxSchema schema, RedisFixture redis) : IClassFixture<OutboxSchema>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly string _prefix = TestServers.UniqueName("profile") + ":";

    private async Task<(UserCommandHandler Commands, UserQueryHandler Queries, OutboxDispatcher Dispatcher, PostgresJsonbReadModelStore<UserProfile> Store, ReadModelCache<UserProfile> Cache)> SetUpAsync()
    {
        var commands = new UserCommandHandler(schema.DataSource, schema.Store);
        await commands.EnsureCreatedAsync(Ct);
        var store = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "user_profiles");
        await store.EnsureCreatedAsync(Ct);
        var cache = new ReadModelCache<UserProfile>(redis.Db, store, _prefix);
        var projection = new UserProfileProjection(store, cache);
        return (commands, new UserQueryHandler(store, cache), new OutboxDispatcher(schema.DataSource, schema.Store, projection), store, cache);
    }

    private static string Key(long id) => id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Created_and_updated_users_reach_the_read_model_and_the_cache_is_invalidated()
    {
        var (commands, queries, dispatcher, store, cache) = await SetUpAsync();
        var id = await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@example.com", "Ada", "eu"), Ct);

        Assert.Null((await queries.GetUserProfileAsync(id, Ct)).Profile); // not projected yet
        await Delivery.UntilAsync(dispatcher, async () => await store.GetAsync(Key(id), Ct) is not null, Ct);

        var (first, fromCache) = await queries.GetUserProfileAsync(id, Ct);
        Assert.False(fromCache);
        Assert.Equal(("Ada", "eu", 1L), (first!.Name, first.Region, first.Version));
        Assert.True((await queries.GetUserProfileAsync(id, Ct)).FromCache);
        Assert.True(await redis.Db.KeyExistsAsync(cache.Key(Key(id))));

        Assert.Equal(2, await commands.UpdateUserAsync(new UpdateUser(id, "Ada L.", null), Ct));
        await Delivery.UntilAsync(dispatcher, async () => (await store.GetAsync(Key(id), Ct))!.Version == 2, Ct);
        Assert.False(await redis.Db.KeyExistsAsync(cache.Key(Key(id)))); // invalidated once the batch committed

        var (second, secondFromCache) = await queries.GetUserProfileAsync(id, Ct);
        Assert.False(secondFromCache);
        Assert.Equal(("Ada L.", "eu", 2L), (second!.Name, second.Region, second.Version));
    }

    [Fact]
    public async Task A_reader_cannot_re_cache_a_version_older_than_the_last_invalidation()
    {
        var (commands, queries, dispatcher, store, cache) = await SetUpAsync();
        var id = await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@example.com", "Old", "us"), Ct);
        await Delivery.UntilAsync(dispatcher, async () => await store.GetAsync(Key(id), Ct) is not null, Ct);
        var stale = (await store.GetAsync(Key(id), Ct))!;

        await commands.UpdateUserAsync(new UpdateUser(id, "New", null), Ct);
        await Delivery.UntilAsync(dispatcher, async () => (await store.GetAsync(Key(id), Ct))!.Version == 2, Ct);

        // A slow reader that loaded version 1 before the update tries to cache it now.
        var accepted = await cache.TrySetAsync(stale, TimeSpan.FromMinutes(1));
        Assert.False(accepted);
        Assert.Equal("New", (await queries.GetUserProfileAsync(id, Ct)).Profile!.Name);
    }

    [Fact]
    public async Task Once_a_version_is_cached_no_reader_replaces_it_with_an_older_one_even_before_the_invalidation_arrives()
    {
        // No invalidation at all here: a store the cache reads directly, with versions 1 and 2 read by two readers.
        var store = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "user_profiles_race");
        await store.EnsureCreatedAsync(Ct);
        var cache = new ReadModelCache<UserProfile>(redis.Db, store, _prefix + "race:");
        var id = Guid.NewGuid().ToString("N");
        var older = new ReadModel<UserProfile>(id, 1, new UserProfile(1, "a@example.com", "Old", "us", 1, DateTimeOffset.UnixEpoch));
        var newer = older with { Version = 2, Document = older.Document with { Name = "New", Version = 2 } };

        // Many readers race, each caching what it read; whichever order they land in, the newest stays cached.
        var writes = Enumerable.Range(0, 64).Select(i => cache.TrySetAsync(i % 2 == 0 ? older : newer, TimeSpan.FromMinutes(1)));
        await Task.WhenAll(writes);

        Assert.False(await cache.TrySetAsync(older, TimeSpan.FromMinutes(1)));
        var (cached, fromCache) = await cache.GetAsync(id, Ct);
        Assert.True(fromCache);
        Assert.Equal(2, cached!.Version);
    }

    [Fact]
    public async Task Updating_a_missing_user_is_a_clear_error_and_writes_no_event()
    {
        var (commands, _, _, _, _) = await SetUpAsync();
        var before = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox");
        var e = await Assert.ThrowsAsync<KeyNotFoundException>(() => commands.UpdateUserAsync(new UpdateUser(long.MaxValue, "x", null), Ct));
        Assert.Contains(long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
        Assert.Equal(before, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox"));
    }

    [Fact]
    public async Task Redis_stream_relay_adds_each_event_once_even_when_redelivered()
    {
        await schema.AppendAsync(3, "relay.test");
        var relay = new RedisStreamRelay(redis.Db, TestServers.UniqueName("events"));
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, relay);
        var total = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox");
        await Delivery.UntilAsync(dispatcher, async () => await redis.Db.StreamLengthAsync(relay.StreamKey) >= total, Ct);
        var count = await redis.Db.StreamLengthAsync(relay.StreamKey);

        // Redeliver everything: reset the checkpoint, as a crash before the checkpoint commit would.
        await schema.ExecAsync($"UPDATE $schema.outbox_checkpoints SET tx_id = '0', event_id = 0 WHERE name = '{relay.Name}'");
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        await Delivery.UntilAsync(dispatcher, async () => (await monitor.GetStatusAsync(relay.Name, Ct)).Pending == 0, Ct);

        Assert.Equal(count, await redis.Db.StreamLengthAsync(relay.StreamKey));
        Assert.Equal(total, count);
        var entries = await redis.Db.StreamRangeAsync(relay.StreamKey, count: 1);
        Assert.Contains(entries[0].Values, v => v.Name == "event_id");
        await redis.Db.KeyDeleteAsync(relay.StreamKey);
    }
}

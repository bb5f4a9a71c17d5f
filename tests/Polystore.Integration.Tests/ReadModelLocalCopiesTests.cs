using System.Collections.Concurrent;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Projections;
using Polystore.Redis;
using Polystore.Samples.Users;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Integration.Tests;

/// <summary>
/// The read model cache's local copies, with two processes stood in for by two multiplexers: one reads, the other
/// projects and invalidates.
/// </summary>
public sealed class ReadModelLocalCopiesTests(OutboxSchema schema) : IClassFixture<OutboxSchema>, IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly string _prefix = TestServers.UniqueName("localcopies") + ":";
    private IConnectionMultiplexer _reader = null!;
    private IConnectionMultiplexer _writer = null!;
    private PostgresJsonbReadModelStore<UserProfile> _store = null!;

    public async ValueTask InitializeAsync()
    {
        _reader = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        _writer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        _store = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "profiles_local");
        await _store.EnsureCreatedAsync(Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _reader.DisposeAsync();
        await _writer.DisposeAsync();
    }

    private ReadModelCache<UserProfile> Cache(IConnectionMultiplexer redis, TimeSpan localTtl) =>
        new(redis.GetDatabase(), _store, _prefix, new ReadModelCacheOptions { LocalTtl = localTtl });

    private static UserProfile Profile(long version) => new(7, "ada@example.com", $"Ada v{version}", "eu", version, DateTimeOffset.UnixEpoch);

    // What a projection does: the store first, then the invalidation.
    private static async Task ProjectAsync(PostgresJsonbReadModelStore<UserProfile> store, ReadModelCache<UserProfile> cache, string id, long version)
    {
        await store.UpsertIfNewerAsync(id, version, Profile(version), Ct);
        await cache.InvalidateAsync(id, version);
    }

    private static async Task<ReadModelCache<UserProfile>> ListeningAsync(ReadModelCache<UserProfile> cache, string id)
    {
        await Eventually.UntilAsync(async () =>
        {
            await cache.GetAsync(id, Ct);
            return cache.LocalCopiesActive;
        }, "the cache heard its own probe on the invalidation channel", Ct);
        return cache;
    }

    [Fact]
    public async Task A_local_copy_answers_without_Redis_and_is_dropped_by_another_process_invalidation()
    {
        var id = Guid.NewGuid().ToString("N");
        await using var writer = Cache(_writer, TimeSpan.Zero); // the projecting process keeps no copies
        await using var reader = await ListeningAsync(Cache(_reader, TimeSpan.FromMinutes(5)), id);
        await ProjectAsync(_store, writer, id, 1);

        // Gone from Redis, without an invalidation: only the local copy can answer now. (A read racing the invalidation
        // of version 1 keeps no copy, hence the retry.)
        await Eventually.UntilAsync(async () =>
        {
            Assert.Equal(1, (await reader.GetAsync(id, Ct)).Model!.Version);
            await _writer.GetDatabase().KeyDeleteAsync(reader.Key(id));
            var (copy, fromCache) = await reader.GetAsync(id, Ct);
            return fromCache && copy!.Version == 1;
        }, "a read answered from the local copy", Ct);

        await ProjectAsync(_store, writer, id, 2);
        await Eventually.UntilAsync(async () => (await reader.GetAsync(id, Ct)).Model!.Version == 2, "the reader saw version 2", Ct);
        Assert.Equal("Ada v2", (await reader.GetAsync(id, Ct)).Model!.Document.Name);
    }

    [Fact]
    public async Task Without_local_copies_nothing_is_kept_in_process()
    {
        var id = Guid.NewGuid().ToString("N");
        await using var cache = Cache(_reader, TimeSpan.Zero);
        await ProjectAsync(_store, cache, id, 1);
        Assert.Equal(1, (await cache.GetAsync(id, Ct)).Model!.Version);
        await _writer.GetDatabase().KeyDeleteAsync(cache.Key(id));
        Assert.False((await cache.GetAsync(id, Ct)).FromCache); // back to the store
        Assert.False(cache.LocalCopiesActive);
    }

    [Fact]
    public async Task Readers_racing_invalidations_never_go_back_a_version_and_end_on_the_last()
    {
        const int versions = 60;
        var ids = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        await using var writer = Cache(_writer, TimeSpan.Zero);
        await using var reader = Cache(_reader, TimeSpan.FromMinutes(5));
        foreach (var id in ids) await ProjectAsync(_store, writer, id, 1);
        await ListeningAsync(reader, ids[0]);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var backwards = new ConcurrentBag<string>();
        var readers = Enumerable.Range(0, 8).Select(r => Task.Run(async () =>
        {
            var id = ids[r % ids.Length];
            long last = 0;
            while (!stop.IsCancellationRequested)
            {
                var version = (await reader.GetAsync(id, Ct)).Model!.Version;
                if (version < last) backwards.Add($"{id}: {version} after {last}");
                last = Math.Max(last, version);
                await Task.Yield(); // a local hit completes synchronously: let the projections' continuations run
            }
        })).ToArray();
        // One projection per id, as the outbox delivers them: in order per aggregate.
        await Task.WhenAll(ids.Select(id => Task.Run(async () =>
        {
            for (var version = 2; version <= versions; version++) await ProjectAsync(_store, writer, id, version);
        })));
        foreach (var id in ids)
            await Eventually.UntilAsync(async () => (await reader.GetAsync(id, Ct)).Model!.Version == versions, $"{id} reached version {versions}", Ct);
        await stop.CancelAsync();
        await Task.WhenAll(readers);

        Assert.True(backwards.IsEmpty, string.Join("; ", backwards.Take(10)));
        Assert.True(reader.LocalCopiesActive);
    }

    [Fact]
    public async Task An_invalidation_missed_while_the_connection_was_down_does_not_leave_a_stale_copy()
    {
        var id = Guid.NewGuid().ToString("N");
        var name = $"localcopies-{Guid.NewGuid():N}";
        var settings = RedisDriverSettings.Build(TestServers.Redis);
        settings.ClientName = name;
        await using var own = await ConnectionMultiplexer.ConnectAsync(settings);
        await using var writer = Cache(_writer, TimeSpan.Zero);
        await ProjectAsync(_store, writer, id, 1);
        await using var reader = await ListeningAsync(Cache(own, TimeSpan.FromMinutes(5)), id);
        await Eventually.UntilAsync(async () =>
        {
            await reader.GetAsync(id, Ct);
            await _writer.GetDatabase().KeyDeleteAsync(reader.Key(id));
            var (copy, fromCache) = await reader.GetAsync(id, Ct);
            return fromCache && copy!.Version == 1;
        }, "the reader keeps a local copy of version 1", Ct);

        // The server drops this process's connections, and version 2 is projected with its message lost (the store
        // written and the Redis value dropped, nothing published): only the lost connection can tell the reader.
        var admin = RedisDriverSettings.Build(TestServers.Redis);
        admin.AllowAdmin = true;
        await using (var killer = await ConnectionMultiplexer.ConnectAsync(admin))
        {
            var server = killer.GetServer(killer.GetEndPoints()[0]);
            foreach (var client in (await server.ClientListAsync()).Where(c => c.Name == name))
                await server.ClientKillAsync(client.Id);
        }
        await _store.UpsertIfNewerAsync(id, 2, Profile(2), Ct);
        await _writer.GetDatabase().KeyDeleteAsync(reader.Key(id));

        // A copy kept across the outage would answer version 1 for five minutes.
        await Eventually.UntilAsync(async () => (await reader.GetAsync(id, Ct)).Model!.Version == 2, "the reader saw version 2", Ct);
    }
}

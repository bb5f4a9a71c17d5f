using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Mongo;
using Polystore.Postgres;
using Polystore.Redis;
using Polystore.Samples.Users;
using StackExchange.Redis;

namespace Polystore.Cli.Commands;

/// <summary>The users CQRS flow assembled from a config: outbox and users in <c>schema</c>, read model in MongoDB when configured, else PostgreSQL JSONB.</summary>
internal sealed class CqrsWiring : IAsyncDisposable
{
    private CqrsWiring(PostgresDataSources sources, IConnectionMultiplexer? redis, OutboxStore outbox, IReadModelStore<UserProfile> store)
    {
        Sources = sources;
        Redis = redis;
        Outbox = outbox;
        Store = store;
        Cache = redis is null ? null : new ReadModelCache<UserProfile>(redis.GetDatabase(), store, "profile:");
        Commands = new UserCommandHandler(sources.Primary, outbox);
        Queries = new UserQueryHandler(store, Cache);
        Monitor = new OutboxMonitor(sources.Primary, outbox);
    }

    public PostgresDataSources Sources { get; }
    public IConnectionMultiplexer? Redis { get; }
    public OutboxStore Outbox { get; }
    public IReadModelStore<UserProfile> Store { get; }
    public ReadModelCache<UserProfile>? Cache { get; }
    public UserCommandHandler Commands { get; }
    public UserQueryHandler Queries { get; }
    public OutboxMonitor Monitor { get; }

    public UserProfileProjection Projection(Action<OutboxEvent>? applied = null) => new(Store, Cache) { Applied = applied };

    public OutboxDispatcher Dispatcher(OutboxDispatcherOptions? options = null, Action<OutboxEvent>? applied = null) =>
        new(Sources.Primary, Outbox, Projection(applied), options);

    public static async Task<CqrsWiring> CreateAsync(PolystoreConfig config, string schema, bool forcePostgresReadModel, CancellationToken cancellationToken)
    {
        var postgres = config.Postgres ?? throw new InvalidOperationException("the outbox needs PostgreSQL: the config has no postgresql.yaml");
        var sources = PostgresDataSources.Create(postgres);
        var redis = config.Redis is { } r ? await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(r)) : null;
        var outbox = new OutboxStore(schema);
        IReadModelStore<UserProfile> store = config.Mongo is { } mongo && !forcePostgresReadModel
            ? new MongoReadModelStore<UserProfile>(new MongoClient(MongoDriverSettings.Build(mongo)).GetDatabase(mongo.Connection.Database), "user_profiles")
            : new PostgresJsonbReadModelStore<UserProfile>(sources.Primary, schema, "user_profiles");
        var wiring = new CqrsWiring(sources, redis, outbox, store);
        await wiring.Commands.EnsureCreatedAsync(cancellationToken);
        await store.EnsureCreatedAsync(cancellationToken);
        return wiring;
    }

    public async ValueTask DisposeAsync()
    {
        if (Redis is not null) await Redis.DisposeAsync();
        await Sources.DisposeAsync();
    }
}

using MongoDB.Driver;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Outbox;
using Polystore.Integration.Mongo;
using Polystore.Integration.Projections;
using Polystore.Postgres;
using StackExchange.Redis;

namespace Polystore.Samples.Users;

/// <summary>
/// The users domain over the clients an application registered with <c>AddPolystore</c>: commands and the outbox in
/// one PostgreSQL schema, the read model in MongoDB when one is registered (else PostgreSQL JSONB in the same schema),
/// cached in Redis when Redis is registered. Owns no connection: the service provider disposes the clients.
/// Register it with <see cref="UsersServiceCollectionExtensions.AddUsersApp"/>.
/// </summary>
public sealed class UsersApp : IAsyncDisposable
{
    /// <summary>Wires the domain; nothing touches a server until <see cref="EnsureCreatedAsync"/> or a command.</summary>
    /// <param name="sources">The application's PostgreSQL data sources.</param>
    /// <param name="schema">The schema of the users table, the outbox and a JSONB read model.</param>
    /// <param name="mongo">The MongoDB database for the read model, or null to keep it in PostgreSQL.</param>
    /// <param name="redis">The multiplexer for the profile cache, or null for no cache.</param>
    /// <param name="profileCache">How the profile cache caches (Redis only, one hour, by default).</param>
    public UsersApp(PostgresDataSources sources, string schema, IMongoDatabase? mongo = null, IConnectionMultiplexer? redis = null, ReadModelCacheOptions? profileCache = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        Sources = sources;
        Redis = redis;
        Outbox = new OutboxStore(schema);
        Store = mongo is not null
            ? new MongoReadModelStore<UserProfile>(mongo, UserProfileProjection.DefaultName)
            : new PostgresJsonbReadModelStore<UserProfile>(sources.Primary, schema, UserProfileProjection.DefaultName);
        // Ids restart at 1 in every schema: the schema is part of the cache key.
        Cache = redis is null ? null : new ReadModelCache<UserProfile>(redis.GetDatabase(), Store, $"profile:{schema}:", profileCache ?? new ReadModelCacheOptions());
        Commands = new UserCommandHandler(sources.Primary, Outbox);
        Queries = new UserQueryHandler(Store, Cache);
        Monitor = new OutboxMonitor(sources.Primary, Outbox);
    }

    /// <summary>The application's PostgreSQL data sources.</summary>
    public PostgresDataSources Sources { get; }

    /// <summary>The multiplexer behind the cache, when Redis is registered.</summary>
    public IConnectionMultiplexer? Redis { get; }

    /// <summary>The outbox the commands append to.</summary>
    public OutboxStore Outbox { get; }

    /// <summary>Where profiles are projected.</summary>
    public IReadModelStore<UserProfile> Store { get; }

    /// <summary>The profile cache, when Redis is registered.</summary>
    public ReadModelCache<UserProfile>? Cache { get; }

    /// <summary>Create and update users: the row and its event in one transaction.</summary>
    public UserCommandHandler Commands { get; }

    /// <summary>Profiles (through the cache) and region analytics.</summary>
    public UserQueryHandler Queries { get; }

    /// <summary>The outbox's backlog and lag.</summary>
    public OutboxMonitor Monitor { get; }

    /// <summary>A projection of user events into <see cref="Store"/>, invalidating <see cref="Cache"/>.</summary>
    /// <param name="applied">Told of each event applied (for lag figures).</param>
    public UserProfileProjection Projection(Action<OutboxEvent>? applied = null) => new(Store, Cache) { Applied = applied };

    /// <summary>A dispatcher of this outbox to <see cref="Projection"/>; run it with <c>RunAsync</c>.</summary>
    public OutboxDispatcher Dispatcher(OutboxDispatcherOptions? options = null, Action<OutboxEvent>? applied = null) =>
        new(Sources.Primary, Outbox, Projection(applied), options);

    /// <summary>Creates the users table, the outbox and the read model where missing.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        await Commands.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
        await Store.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the profile cache's invalidation listener; the clients belong to the service provider.</summary>
    public ValueTask DisposeAsync() => Cache?.DisposeAsync() ?? ValueTask.CompletedTask;
}

using Microsoft.Extensions.DependencyInjection;
using MongoDB.Driver;
using Polystore.Integration.Cqrs;
using Polystore.Postgres;
using StackExchange.Redis;

namespace Polystore.Samples.Users;

/// <summary>Registers the users domain on top of <c>AddPolystore</c>.</summary>
public static class UsersServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="UsersApp"/> as a singleton over the registered stores: PostgreSQL (required), MongoDB for
    /// the read model when registered and <paramref name="postgresReadModel"/> is false, Redis for the cache when registered.
    /// </summary>
    /// <param name="services">The service collection, after <c>AddPolystore</c>.</param>
    /// <param name="schema">The PostgreSQL schema of the users table, the outbox and a JSONB read model.</param>
    /// <param name="postgresReadModel">Keep the read model in PostgreSQL even when MongoDB is registered.</param>
    /// <param name="profileCache">How the profile cache caches (Redis only, one hour, by default).</param>
    public static IServiceCollection AddUsersApp(this IServiceCollection services, string schema, bool postgresReadModel = false, ReadModelCacheOptions? profileCache = null) =>
        services.AddSingleton(sp => new UsersApp(
            sp.GetRequiredService<PostgresDataSources>(),
            schema,
            postgresReadModel ? null : sp.GetService<IMongoDatabase>(),
            sp.GetService<IConnectionMultiplexer>(),
            profileCache));
}

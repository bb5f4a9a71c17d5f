using System.Text.Json;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Outbox;
using StackExchange.Redis;

namespace Polystore.Integration.Projections;

/// <summary>
/// The seed's UserEventHandler made safe: applies <c>user.*</c> events to the user_profiles read model
/// with a version guard, then (after the checkpoint commits) drops the cached profile from Redis.
/// </summary>
public sealed class UserProfileProjection : IOutboxSubscriber
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly IReadModelStore<UserProfile> _store;
    private readonly IDatabase? _cache;
    private readonly string _cachePrefix;

    /// <summary>Creates the projection.</summary>
    /// <param name="store">Where profiles are kept.</param>
    /// <param name="cache">Redis, whose cached profiles are invalidated; null when there is no cache.</param>
    /// <param name="cachePrefix">The cache key prefix; a profile is cached at <c>{prefix}{id}</c>.</param>
    /// <param name="name">The subscriber name (checkpoint key); a rebuild uses a new one.</param>
    public UserProfileProjection(IReadModelStore<UserProfile> store, IDatabase? cache = null, string cachePrefix = "profile:", string name = "user_profiles")
    {
        _store = store;
        _cache = cache;
        _cachePrefix = cachePrefix;
        Name = name;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>How long an invalidation's version floor is kept: at least the query side's cache TTL.</summary>
    public TimeSpan CacheFloorTtl { get; init; } = TimeSpan.FromHours(1.2);

    /// <summary>Called after each applied event with the event's lag (for metrics and benchmarks).</summary>
    public Action<OutboxEvent>? Applied { get; init; }

    /// <inheritdoc />
    public async Task HandleBatchAsync(IReadOnlyList<OutboxEvent> events, OutboxContext context, CancellationToken cancellationToken)
    {
        var users = events.Where(e => e.Stream == "user").ToList();
        if (users.Count == 0) return;
        var documents = users.Select(e => new ReadModel<UserProfile>(e.AggregateId, e.Version,
            JsonSerializer.Deserialize<UserProfile>(e.PayloadJson, Json) ?? throw new InvalidDataException($"outbox event {e.Id} has an empty payload"))).ToList();
        // One round trip for the batch; stale or duplicate versions are skipped by the store's guard.
        await _store.UpsertManyIfNewerAsync(documents, context, cancellationToken).ConfigureAwait(false);
        if (_cache is not null)
        {
            // Invalidating an id whose write was skipped is harmless: the floor only ever rises.
            var newest = documents.GroupBy(d => d.Id).Select(g => g.MaxBy(d => d.Version)!).ToList();
            // Sent together: the multiplexer pipelines them in one flush.
            context.AfterCommit(_ => Task.WhenAll(newest.Select(d => VersionedCache.InvalidateAsync(_cache, _cachePrefix, d.Id, d.Version, CacheFloorTtl))));
        }
        if (Applied is not null) foreach (var e in users) Applied(e);
    }

    /// <inheritdoc />
    public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
    {
        if (outboxEvent.Stream != "user") return;
        var profile = JsonSerializer.Deserialize<UserProfile>(outboxEvent.PayloadJson, Json)
            ?? throw new InvalidDataException($"outbox event {outboxEvent.Id} has an empty payload");
        var written = await _store.UpsertIfNewerAsync(outboxEvent.AggregateId, outboxEvent.Version, profile, context, cancellationToken).ConfigureAwait(false);
        if (written && _cache is not null)
        {
            var (id, version) = (outboxEvent.AggregateId, outboxEvent.Version);
            context.AfterCommit(_ => VersionedCache.InvalidateAsync(_cache, _cachePrefix, id, version, CacheFloorTtl));
        }
        Applied?.Invoke(outboxEvent);
    }
}

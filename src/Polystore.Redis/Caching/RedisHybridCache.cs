using Microsoft.Extensions.Caching.Hybrid;

namespace Polystore.Redis.Caching;

/// <summary>
/// A <see cref="IRedisTieredCache"/> as a <see cref="HybridCache"/>: its L1 and Redis layers, its per-key stampede
/// protection and its tags serve every library written against the abstraction.
/// </summary>
/// <remarks>
/// <para>As the default <see cref="HybridCache"/>: a factory result is cached, null included (for
/// <see cref="HybridCacheEntryOptions.Expiration"/>); concurrent misses of a key run one factory and share its result
/// or exception; a cancelled caller stops waiting and the others still get the value; keys that are empty, longer
/// than 1024 characters or hold control characters are not cached (the factory runs every time); the tag <c>*</c>
/// is reserved and <c>RemoveByTagAsync("*")</c> removes every entry of the cache (a SCAN of every primary);
/// <see cref="HybridCacheEntryFlags.DisableUnderlyingData"/> only reads.</para>
/// <para>Unlike it: expirations get the cache's <see cref="RedisTieredCacheOptions.JitterFraction"/>; the factory's
/// token is never cancelled (the result is cached for the next caller); values are serialized by
/// <see cref="RedisTieredCacheOptions.Serializer"/> (registered <see cref="IHybridCacheSerializer{T}"/>s are not
/// used) and L1 hands every caller the same instance, so treat cached values as immutable;
/// <see cref="HybridCacheEntryOptions.LocalCacheExpiration"/> is not applied per entry (L1 copies live up to
/// <see cref="RedisTieredCacheOptions.L1Ttl"/>, never past the entry's expiration, and every instance drops its copy
/// when the entry changes through the cache); an L1 copy carries the tags of the call that filled it, so name an
/// entry's tags on every call that reads it, or another instance's copy can outlive <see cref="RemoveByTagAsync(string, CancellationToken)"/>
/// by up to <see cref="RedisTieredCacheOptions.L1Ttl"/> (Redis itself drops the entry at once). The flags that switch a layer off per call
/// (<see cref="HybridCacheEntryFlags.DisableLocalCache"/>, <see cref="HybridCacheEntryFlags.DisableDistributedCache"/>
/// and their read/write halves) throw <see cref="NotSupportedException"/>: the layers are chosen once, in
/// <see cref="RedisTieredCacheOptions.UseL1"/>; local ones are accepted when the cache has no L1.</para>
/// </remarks>
public sealed class RedisHybridCache : HybridCache
{
    private const int MaxKeyLength = 1024;
    private const string WildcardTag = "*";
    private const HybridCacheEntryFlags LocalFlags = HybridCacheEntryFlags.DisableLocalCache;
    private const HybridCacheEntryFlags DistributedFlags = HybridCacheEntryFlags.DisableDistributedCache;

    private readonly IRedisTieredCache _cache;
    private readonly bool _hasL1;

    /// <summary>Adapts <paramref name="cache"/>.</summary>
    public RedisHybridCache(IRedisTieredCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        _cache = cache;
        // Another implementation may keep a local copy: assume it does.
        _hasL1 = cache is not RedisTieredCache { Options.UseL1: false };
    }

    /// <inheritdoc />
    public override async ValueTask<T> GetOrCreateAsync<TState, T>(string key, TState state, Func<TState, CancellationToken, ValueTask<T>> factory,
        HybridCacheEntryOptions? options = null, IEnumerable<string>? tags = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(factory);
        cancellationToken.ThrowIfCancellationRequested();
        var entry = Entry(options, tags);
        var readOnly = ((options?.Flags ?? HybridCacheEntryFlags.None) & HybridCacheEntryFlags.DisableUnderlyingData) != 0;
        if (!IsCacheable(key)) return readOnly ? default! : await factory(state, cancellationToken).ConfigureAwait(false);
        if (readOnly)
        {
            var (found, value) = await _cache.TryGetAsync<T>(key, cancellationToken).ConfigureAwait(false);
            return found ? value! : default!;
        }
        var load = new Load<TState, T>(state, factory);
        var result = await _cache.GetOrSetAsync<T>(key, load.RunAsync, entry, cancellationToken).ConfigureAwait(false);
        // The tiered cache keeps a null result only with NegativeTtl; HybridCache keeps it as any value, so the
        // caller whose factory produced it stores it (with this entry's expiration).
        if (load.ProducedNull) await _cache.SetAsync(key, result, entry, CancellationToken.None).ConfigureAwait(false);
        return result!;
    }

    /// <inheritdoc />
    public override async ValueTask SetAsync<T>(string key, T value, HybridCacheEntryOptions? options = null, IEnumerable<string>? tags = null, CancellationToken cancellationToken = default)
    {
        var entry = Entry(options, tags);
        if (!IsCacheable(key)) return;
        await _cache.SetAsync(key, value, entry, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask RemoveAsync(string key, CancellationToken cancellationToken = default)
    {
        if (!IsCacheable(key)) return;
        await _cache.RemoveAsync(key, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrWhiteSpace(tag)) return;
        if (tag == WildcardTag) await _cache.RemoveByPatternAsync("*", cancellationToken).ConfigureAwait(false);
        else await _cache.RemoveByTagAsync(tag, cancellationToken).ConfigureAwait(false);
    }

    private CacheEntryOptions Entry(HybridCacheEntryOptions? options, IEnumerable<string>? tags)
    {
        var flags = options?.Flags ?? HybridCacheEntryFlags.None;
        if ((flags & DistributedFlags) != 0)
            throw new NotSupportedException($"HybridCacheEntryFlags {flags & DistributedFlags} is not supported: Redis is this cache's store, so every entry goes through it.");
        if ((flags & LocalFlags) != 0 && _hasL1)
            throw new NotSupportedException($"HybridCacheEntryFlags {flags & LocalFlags} is not supported with L1 on: the layers are chosen once, in RedisTieredCacheOptions.UseL1.");
        if (options?.Expiration is { } expiration && expiration <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), expiration, "HybridCacheEntryOptions.Expiration must be positive.");
        List<string>? list = null;
        if (tags is not null)
        {
            foreach (var tag in tags)
            {
                if (string.IsNullOrEmpty(tag)) throw new ArgumentException("Tags cannot be empty.", nameof(tags));
                if (tag == WildcardTag) throw new ArgumentException($"The tag '{WildcardTag}' is reserved: RemoveByTagAsync(\"{WildcardTag}\") removes every entry.", nameof(tags));
                (list ??= []).Add(tag);
            }
        }
        // A null is a value here (as in the default HybridCache): stored for the entry's expiration, never NegativeTtl.
        return options?.Expiration is null && list is null ? NullAsValue : new CacheEntryOptions { Ttl = options?.Expiration, Tags = list, NullAsValue = true };
    }

    private static readonly CacheEntryOptions NullAsValue = new() { NullAsValue = true };

    // The rules of the default HybridCache: such keys are served by the factory and never stored.
    private static bool IsCacheable(string? key) =>
        !string.IsNullOrWhiteSpace(key) && key.Length <= MaxKeyLength && key.AsSpan().IndexOfAnyInRange('\0', (char)31) < 0;

    /// <summary>One caller's factory, with its state, noting whether it ran and produced null.</summary>
    private sealed class Load<TState, T>(TState state, Func<TState, CancellationToken, ValueTask<T>> factory)
    {
        public bool ProducedNull { get; private set; }

        public async Task<T?> RunAsync(CancellationToken cancellationToken)
        {
            var value = await factory(state, cancellationToken).ConfigureAwait(false);
            ProducedNull = value is null;
            return value;
        }
    }
}

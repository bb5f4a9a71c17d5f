using StackExchange.Redis;

namespace Polystore.Redis.Caching;

/// <summary>
/// Keeps the L1 copies of every <see cref="RedisTieredCache"/> instance with the same key prefix in step: each
/// change is published on the Redis channel <c>prefix:__invalidate</c> as <c>instance|kind|value</c> (kind
/// <c>k</c> = one key, <c>p</c> = a key prefix, <c>t</c> = a tag, <c>a</c> = everything), and every other
/// subscribed instance drops the matching copies. Publishing is best effort: when Redis is unavailable, the
/// other instances' copies live out their L1 TTL.
/// </summary>
internal sealed class CacheInvalidationChannel
{
    private readonly IConnectionMultiplexer _redis;
    private readonly L1Cache _l1;
    private readonly RedisChannel _channel;
    private readonly string _instanceId = Guid.NewGuid().ToString("N");
    private readonly RedisCircuitBreaker _breaker;

    public CacheInvalidationChannel(IConnectionMultiplexer redis, string keyPrefix, L1Cache l1, RedisCircuitBreaker breaker)
    {
        _redis = redis;
        _breaker = breaker;
        _l1 = l1;
        _channel = RedisChannel.Literal(keyPrefix + ":__invalidate");
    }

    /// <summary>
    /// Subscribes and waits for Redis to confirm, within the operation timeout; while the circuit breaker is open it
    /// fails at once (<see cref="InvalidationSubscription"/> tries again on a later use).
    /// </summary>
    public Task SubscribeAsync(CancellationToken cancellationToken) => _breaker.IsOpen
        ? Task.FromException(_breaker.ShortCircuit(L2Cache.Component, "the invalidation channel is not subscribed yet"))
        : _breaker.RunAsync(_redis.GetSubscriber().SubscribeAsync(_channel, OnMessage), cancellationToken);

    public async Task UnsubscribeAsync()
    {
        try
        {
            await _breaker.RunAsync(_redis.GetSubscriber().UnsubscribeAsync(_channel, OnMessage)).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            // The subscription ends with the connection anyway.
        }
    }

    public Task PublishKeyAsync(string key) => PublishAsync('k', key);

    public Task PublishPrefixAsync(string keyPrefix) => PublishAsync('p', keyPrefix);

    public Task PublishTagAsync(string tag) => PublishAsync('t', tag);

    public Task PublishAllAsync() => PublishAsync('a', "");

    private async Task PublishAsync(char kind, string value)
    {
        if (_breaker.IsOpen)
        {
            _breaker.CountShortCircuit(L2Cache.Component);
            RedisMetrics.RecordCacheFallback("publish");
            return;
        }
        var message = string.Concat(_instanceId, "|", kind.ToString(), "|", value);
        try
        {
            await _breaker.RunAsync(_redis.GetSubscriber().PublishAsync(_channel, message)).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            RedisMetrics.RecordCacheFallback("publish");
        }
    }

    private void OnMessage(RedisChannel channel, RedisValue message)
    {
        var text = (string?)message;
        if (text is null) return;
        var parts = text.Split('|', 3);
        if (parts.Length != 3 || parts[0] == _instanceId) return; // this instance applied its own change already
        var value = parts[2];
        switch (parts[1])
        {
            case "k":
                _l1.Drop(value);
                break;
            case "p":
                _l1.DropPrefix(value);
                break;
            case "t":
                _l1.DropTagged(value);
                break;
            default:
                _l1.Clear();
                break;
        }
    }
}

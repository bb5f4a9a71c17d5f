using System.Globalization;
using StackExchange.Redis;

namespace Polystore.Integration.Cqrs;

/// <summary>
/// Carries a <see cref="ReadModelCache{T}"/>'s invalidations to the local copies of every process. The invalidation
/// script publishes <c>v|version|id</c> on the channel in the same step as it raises the floor, so no extra round trip
/// is made and no process can miss one while it listens. Copies are kept only after this process heard its own probe
/// (<c>p|nonce</c>) on the channel, i.e. the subscription demonstrably delivers; a lost connection stops that until a
/// new probe comes back.
/// </summary>
internal sealed class ReadModelInvalidationChannel<T> : IAsyncDisposable
{
    private static readonly TimeSpan ProbeRetry = TimeSpan.FromSeconds(1);
    private readonly IConnectionMultiplexer _redis;
    private readonly LocalReadModelCopies<T> _copies;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private bool _subscribed;
    private bool _disposed;
    private string? _probe; // the nonce of the probe in flight
    private long _probeSentAt;

    public ReadModelInvalidationChannel(IConnectionMultiplexer redis, string prefix, LocalReadModelCopies<T> copies, TimeProvider time)
    {
        _redis = redis;
        _copies = copies;
        _time = time;
        Channel = RedisChannel.Literal(Name(prefix));
        _redis.ConnectionFailed += OnConnectionChanged;
        _redis.ConnectionRestored += OnConnectionChanged;
    }

    public RedisChannel Channel { get; }

    /// <summary>The channel name of a cache prefix (what the invalidation script publishes on).</summary>
    public static string Name(string prefix) => prefix + "__invalidated";

    /// <summary>Starts a probe if copies are not kept yet and none is in flight (or the last one is a second old); never waits.</summary>
    public void EnsureListening()
    {
        if (_copies.Listening) return;
        string nonce;
        bool subscribe;
        lock (_gate)
        {
            if (_disposed || (_probe is not null && _time.GetElapsedTime(_probeSentAt) < ProbeRetry)) return;
            nonce = Guid.NewGuid().ToString("N");
            _probe = nonce;
            _probeSentAt = _time.GetTimestamp();
            subscribe = !_subscribed;
        }
        _ = ProbeAsync(nonce, subscribe);
    }

    private async Task ProbeAsync(string nonce, bool subscribe)
    {
        try
        {
            var subscriber = _redis.GetSubscriber();
            if (subscribe)
            {
                await subscriber.SubscribeAsync(Channel, OnMessage).ConfigureAwait(false);
                bool disposed;
                lock (_gate)
                {
                    disposed = _disposed;
                    _subscribed = !disposed;
                }
                if (disposed)
                {
                    // Disposed while subscribing: the subscription made since must not outlive it.
                    await subscriber.UnsubscribeAsync(Channel, OnMessage).ConfigureAwait(false);
                    return;
                }
            }
            await subscriber.PublishAsync(Channel, "p|" + nonce).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
        {
            // Copies stay off; the next read after ProbeRetry tries again.
        }
    }

    private void OnMessage(RedisChannel channel, RedisValue message)
    {
        var text = (string?)message;
        if (text is null || text.Length < 2) return;
        if (text[0] == 'p')
        {
            // Under the gate, as every change of Listening: a connection failure or a disposal that lands meanwhile must
            // not be undone by this probe coming back.
            lock (_gate)
            {
                if (_disposed || _probe != text[2..]) return; // another process's probe, or one from before a reconnect
                _probe = null;
                _copies.Listening = true;
            }
            return;
        }
        var parts = text.Split('|', 3);
        if (parts.Length == 3 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var version))
            _copies.Invalidate(parts[2], version);
    }

    // Messages published while the connection was down are lost: stop keeping copies until a new probe comes back.
    private void OnConnectionChanged(object? sender, ConnectionFailedEventArgs e)
    {
        lock (_gate)
        {
            _probe = null;
            _copies.Listening = false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _redis.ConnectionFailed -= OnConnectionChanged;
        _redis.ConnectionRestored -= OnConnectionChanged;
        bool subscribed;
        lock (_gate)
        {
            _disposed = true;
            _probe = null;
            _copies.Listening = false;
            subscribed = _subscribed;
        }
        if (!subscribed) return;
        try
        {
            await _redis.GetSubscriber().UnsubscribeAsync(Channel, OnMessage).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
        {
            // The subscription ends with the connection anyway.
        }
    }
}

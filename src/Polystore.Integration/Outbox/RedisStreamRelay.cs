using System.Globalization;
using Polystore.Redis;
using StackExchange.Redis;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Relays outbox events to a Redis Stream so other services consume them with consumer groups. XADD with an
/// approximate MAXLEN; idempotent by event id, so a redelivery after a crash adds nothing: a marker key, in the
/// stream's slot, set in the same script once the XADD has succeeded.
/// </summary>
public sealed class RedisStreamRelay : IOutboxSubscriber
{
    private const string DefaultStreamName = "polystore:events";

    // KEYS[1] = the event's marker, KEYS[2] = the stream; ARGV = marker TTL ms, max length, then the event's fields.
    // The marker is set after the XADD: an XADD that fails (a key of another type, OOM) raises before it, so the
    // dispatcher's retry sends the event again instead of finding a marker for an event that never reached the stream.
    private static readonly RedisScript Relay = new("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return false end
        local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
          'event_id', ARGV[3], 'type', ARGV[4], 'stream', ARGV[5], 'aggregate_id', ARGV[6], 'version', ARGV[7], 'payload', ARGV[8])
        redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
        return id
        """);

    private readonly IDatabase _redis;
    private readonly string _tag;
    private readonly long _maxLength;
    private readonly long _markerTtlMs;

    /// <summary>Creates the relay.</summary>
    /// <param name="redis">The Redis database.</param>
    /// <param name="streamName">The stream is stored at <c>{streamName}</c> (a hash tag, so its markers share the slot).</param>
    /// <param name="maxLength">Approximate cap on the stream's length.</param>
    /// <param name="markerTtl">How long an event id is remembered for de-duplication (default one day).</param>
    /// <param name="name">
    /// The subscriber name its checkpoint is kept under. Null = <c>redis_stream_relay</c> for the default stream and
    /// <c>redis_stream_relay:{streamName}</c> for any other, so relays to different streams each get every event.
    /// </param>
    public RedisStreamRelay(IDatabase redis, string streamName = DefaultStreamName, long maxLength = 100_000, TimeSpan? markerTtl = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentException.ThrowIfNullOrEmpty(streamName);
        _redis = redis;
        _tag = $"{{{streamName}}}";
        _maxLength = maxLength;
        _markerTtlMs = (long)(markerTtl ?? TimeSpan.FromDays(1)).TotalMilliseconds;
        Name = name ?? (streamName == DefaultStreamName ? "redis_stream_relay" : $"redis_stream_relay:{streamName}");
    }

    /// <summary>The Redis key of the stream.</summary>
    public string StreamKey => _tag;

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
    {
        var id = outboxEvent.Id.ToString(CultureInfo.InvariantCulture);
        await Relay.EvaluateAsync(_redis,
            [$"{_tag}:relayed:{id}", _tag],
            [_markerTtlMs, _maxLength, id, outboxEvent.Type, outboxEvent.Stream, outboxEvent.AggregateId, outboxEvent.Version, outboxEvent.PayloadJson]).ConfigureAwait(false);
    }
}

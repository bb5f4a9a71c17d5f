using System.Globalization;
using Polystore.Redis;
using StackExchange.Redis;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Relays outbox events to a Redis Stream so other services consume them with consumer groups. XADD with an
/// approximate MAXLEN; idempotent by event id, so a redelivery after a crash adds nothing: a marker key set
/// with NX in the same script, in the same slot.
/// </summary>
public sealed class RedisStreamRelay : IOutboxSubscriber
{
    // KEYS[1] = the event's marker, KEYS[2] = the stream; ARGV = marker TTL ms, max length, then the event's fields.
    private static readonly RedisScript Relay = new("""
        if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
          return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
            'event_id', ARGV[3], 'type', ARGV[4], 'stream', ARGV[5], 'aggregate_id', ARGV[6], 'version', ARGV[7], 'payload', ARGV[8])
        end
        return false
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
    public RedisStreamRelay(IDatabase redis, string streamName = "polystore:events", long maxLength = 100_000, TimeSpan? markerTtl = null)
    {
        _redis = redis;
        _tag = $"{{{streamName}}}";
        _maxLength = maxLength;
        _markerTtlMs = (long)(markerTtl ?? TimeSpan.FromDays(1)).TotalMilliseconds;
    }

    /// <summary>The Redis key of the stream.</summary>
    public string StreamKey => _tag;

    /// <inheritdoc />
    public string Name => "redis_stream_relay";

    /// <inheritdoc />
    public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
    {
        var id = outboxEvent.Id.ToString(CultureInfo.InvariantCulture);
        await Relay.EvaluateAsync(_redis,
            [$"{_tag}:relayed:{id}", _tag],
            [_markerTtlMs, _maxLength, id, outboxEvent.Type, outboxEvent.Stream, outboxEvent.AggregateId, outboxEvent.Version, outboxEvent.PayloadJson]).ConfigureAwait(false);
    }
}

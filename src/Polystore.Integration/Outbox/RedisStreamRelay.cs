using System.Globalization;
using StackExchange.Redis;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Relays outbox events to a Redis Stream so other services consume them with consumer groups (the
/// seed's event bus on a real engine). XADD with an approximate MAXLEN; idempotent by event id, so a
/// redelivery after a crash adds nothing: a marker key set with NX in the same script, in the same slot.
/// </summary>
public sealed class RedisStreamRelay : IOutboxSubscriber
{
    private static readonly LuaScript Relay = LuaScript.Prepare(
        """
        if redis.call('SET', @marker, '1', 'NX', 'PX', @markerTtl) then
          return redis.call('XADD', @stream, 'MAXLEN', '~', @maxLength, '*',
            'event_id', @eventId, 'type', @type, 'stream', @aggregate, 'aggregate_id', @aggregateId, 'version', @version, 'payload', @payload)
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
        await _redis.ScriptEvaluateAsync(Relay, new
        {
            marker = (RedisKey)$"{_tag}:relayed:{id}",
            stream = (RedisKey)_tag,
            markerTtl = _markerTtlMs,
            maxLength = _maxLength,
            eventId = id,
            type = outboxEvent.Type,
            aggregate = outboxEvent.Stream,
            aggregateId = outboxEvent.AggregateId,
            version = outboxEvent.Version,
            payload = outboxEvent.PayloadJson,
        }).ConfigureAwait(false);
    }
}

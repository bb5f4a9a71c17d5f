using System.Globalization;
using StackExchange.Redis;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Reads the stream of a <see cref="RedisStreamRelay"/> as one consumer of a consumer group, at least once: a batch is
/// acknowledged (XACK) only after the handler returns, and entries another consumer left pending longer than
/// <c>claimAfter</c> (it died, or was cancelled mid-batch) are taken over with XAUTOCLAIM before new ones are read.
/// So an entry can be handled twice; pair it with <see cref="PostgresInbox"/> (or another deduplication by
/// <see cref="RelayedEvent.EventId"/>) for an effect that happens exactly once.
/// </summary>
public sealed class RedisStreamConsumer
{
    private readonly IDatabase _redis;
    private readonly RedisKey _stream;
    private readonly string _group;
    private readonly string _consumer;
    private readonly int _batchSize;
    private readonly long _claimAfterMs;

    /// <summary>Creates the consumer.</summary>
    /// <param name="redis">The Redis database.</param>
    /// <param name="streamKey">The stream (<see cref="RedisStreamRelay.StreamKey"/>).</param>
    /// <param name="group">The consumer group: each group sees every entry once; its consumers share them.</param>
    /// <param name="consumer">This consumer's name within the group (stable per process, for example the host name).</param>
    /// <param name="batchSize">Entries per read (1-10000); default 100.</param>
    /// <param name="claimAfter">How long an entry may stay pending with another consumer before this one takes it over; default 30 s.</param>
    public RedisStreamConsumer(IDatabase redis, string streamKey, string group, string consumer, int batchSize = 100, TimeSpan? claimAfter = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentException.ThrowIfNullOrWhiteSpace(streamKey);
        ArgumentException.ThrowIfNullOrWhiteSpace(group);
        ArgumentException.ThrowIfNullOrWhiteSpace(consumer);
        if (batchSize is < 1 or > 10_000) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be between 1 and 10000.");
        var claim = claimAfter ?? TimeSpan.FromSeconds(30);
        if (claim < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(claimAfter), claim, "claimAfter must not be negative.");
        (_redis, _stream, _group, _consumer, _batchSize, _claimAfterMs) = (redis, streamKey, group, consumer, batchSize, (long)claim.TotalMilliseconds);
    }

    /// <summary>Creates the consumer group (and the stream) if missing, reading from the stream's start.</summary>
    public async Task EnsureGroupAsync()
    {
        try
        {
            await _redis.StreamCreateConsumerGroupAsync(_stream, _group, StreamPosition.Beginning, createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // It exists: fine.
        }
    }

    /// <summary>The stream malformed entries are moved to: this consumer's stream key followed by <c>:malformed</c>.</summary>
    public string MalformedStreamKey => $"{_stream}:malformed";

    /// <summary>
    /// Handles one batch: entries abandoned by other consumers first, else new ones; acknowledges them after
    /// <paramref name="handle"/> returns. Returns how many entries were taken (0 when there was nothing). An entry not
    /// written by <see cref="RedisStreamRelay"/> (a field missing or not a number) is never handed to
    /// <paramref name="handle"/>: it is copied to <see cref="MalformedStreamKey"/> with its id in a <c>source_id</c>
    /// field and acknowledged, so one foreign entry cannot stop the group.
    /// </summary>
    /// <param name="handle">Handles the batch; throwing (or cancellation) leaves its entries pending, to be claimed again.</param>
    /// <param name="cancellationToken">Checked before the acknowledgement: a cancelled batch is not acknowledged.</param>
    public async Task<int> ConsumeOnceAsync(Func<IReadOnlyList<RelayedEvent>, CancellationToken, Task> handle, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handle);
        cancellationToken.ThrowIfCancellationRequested();
        var claimed = await _redis.StreamAutoClaimAsync(_stream, _group, _consumer, _claimAfterMs, "0-0", _batchSize).ConfigureAwait(false);
        var entries = claimed.ClaimedEntries.Where(e => !e.IsNull).ToArray();
        if (entries.Length == 0)
            entries = await _redis.StreamReadGroupAsync(_stream, _group, _consumer, StreamPosition.NewMessages, _batchSize).ConfigureAwait(false);
        if (entries.Length == 0) return 0;
        var events = new List<RelayedEvent>(entries.Length);
        foreach (var entry in entries)
        {
            if (TryParse(entry) is { } relayed) events.Add(relayed);
            else await SetAsideAsync(entry).ConfigureAwait(false);
        }
        if (events.Count > 0) await handle(events, cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        await _redis.StreamAcknowledgeAsync(_stream, _group, entries.Select(e => e.Id).ToArray()).ConfigureAwait(false);
        return entries.Length;
    }

    // Copied before the batch is acknowledged: a crash in between copies it again on the next claim, never loses it.
    private Task SetAsideAsync(StreamEntry entry) =>
        _redis.StreamAddAsync(MalformedStreamKey, [new NameValueEntry("source_id", entry.Id), .. entry.Values], maxLength: 10_000, useApproximateMaxLength: true);

    private static RelayedEvent? TryParse(StreamEntry entry)
    {
        string? Field(string name) => entry[name] is { IsNull: false } value ? value.ToString() : null;
        if (Field("event_id") is not { } id || !long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var eventId)
            || Field("version") is not { } v || !long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var version)
            || Field("type") is not { } type || Field("stream") is not { } stream || Field("aggregate_id") is not { } aggregate || Field("payload") is not { } payload)
            return null;
        return new RelayedEvent(entry.Id.ToString(), eventId, type, stream, aggregate, version, payload);
    }
}

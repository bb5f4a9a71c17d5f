using System.Collections.Concurrent;

namespace Polystore.Bench.ServiceHost;

/// <summary>Responses per <c>X-Api-Key</c>: admitted (2xx), rejected (429) and other, for the limiter's exactness check.</summary>
internal sealed class StatusCounters
{
    private readonly ConcurrentDictionary<string, long[]> _counts = new(StringComparer.Ordinal);

    public void Record(string key, int status)
    {
        var counts = _counts.GetOrAdd(key, static _ => new long[3]);
        Interlocked.Increment(ref counts[status is >= 200 and < 300 ? 0 : status == StatusCodes.Status429TooManyRequests ? 1 : 2]);
    }

    /// <summary>The counts of the keys that start with <paramref name="prefix"/>.</summary>
    public Dictionary<string, KeyCounts> Snapshot(string prefix) =>
        _counts.Where(pair => pair.Key.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(pair => pair.Key, pair => new KeyCounts(Interlocked.Read(ref pair.Value[0]), Interlocked.Read(ref pair.Value[1]), Interlocked.Read(ref pair.Value[2])));
}

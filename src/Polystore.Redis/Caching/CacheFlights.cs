using System.Collections.Concurrent;

namespace Polystore.Redis.Caching;

/// <summary>
/// Stampede protection: at most one load per key is in progress at a time in this process, and every caller that
/// asks for the key meanwhile joins it and gets its outcome (value or exception). A load is removed before its
/// outcome is handed out, so a caller that arrives afterwards starts a new one.
/// </summary>
internal sealed class CacheFlights
{
    private readonly ConcurrentDictionary<string, Task<CachedValue>> _flights = new(StringComparer.Ordinal);

    /// <summary>
    /// Returns the load of <paramref name="key"/> in progress, or registers a new one: then <paramref name="started"/>
    /// is set, and the caller runs the load and ends it with <see cref="Complete"/> or <see cref="Fail"/>.
    /// </summary>
    public Task<CachedValue> Join(string key, out TaskCompletionSource<CachedValue>? started)
    {
        Task<CachedValue>? flight;
        while (!_flights.TryGetValue(key, out flight))
        {
            var tcs = new TaskCompletionSource<CachedValue>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_flights.TryAdd(key, tcs.Task)) continue;
            started = tcs;
            return tcs.Task;
        }
        started = null;
        return flight;
    }

    public void Complete(string key, TaskCompletionSource<CachedValue> load, CachedValue result)
    {
        _flights.TryRemove(new KeyValuePair<string, Task<CachedValue>>(key, load.Task));
        load.SetResult(result);
    }

    public void Fail(string key, TaskCompletionSource<CachedValue> load, Exception error)
    {
        _flights.TryRemove(new KeyValuePair<string, Task<CachedValue>>(key, load.Task));
        load.SetException(error);
    }
}

using System.Collections.Concurrent;

namespace Polystore.Redis.Caching;

/// <summary>
/// Stampede protection: at most one load per key runs at a time in this process, and every caller that asks
/// for the key meanwhile joins it and gets its outcome (value or exception). The load is removed once it ends,
/// so the next caller starts a new one.
/// </summary>
internal sealed class CacheFlights
{
    private readonly ConcurrentDictionary<string, Task<CachedValue>> _flights = new(StringComparer.Ordinal);

    /// <summary>
    /// Joins the load of <paramref name="key"/> in progress, or starts <paramref name="load"/> with
    /// <paramref name="state"/> (a struct and a static lambda, so joining allocates nothing of its own).
    /// </summary>
    public Task<CachedValue> Join<TState>(string key, TState state, Func<string, TState, Task<CachedValue>> load)
    {
        Task<CachedValue>? flight;
        while (!_flights.TryGetValue(key, out flight))
        {
            var tcs = new TaskCompletionSource<CachedValue>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_flights.TryAdd(key, tcs.Task)) continue;
            _ = RunAsync(key, state, load, tcs);
            return tcs.Task;
        }
        return flight;
    }

    private async Task RunAsync<TState>(string key, TState state, Func<string, TState, Task<CachedValue>> load, TaskCompletionSource<CachedValue> tcs)
    {
        try
        {
            var result = await load(key, state).ConfigureAwait(false);
            _flights.TryRemove(new KeyValuePair<string, Task<CachedValue>>(key, tcs.Task));
            tcs.SetResult(result);
        }
        catch (Exception e)
        {
            _flights.TryRemove(new KeyValuePair<string, Task<CachedValue>>(key, tcs.Task));
            tcs.SetException(e);
        }
    }
}

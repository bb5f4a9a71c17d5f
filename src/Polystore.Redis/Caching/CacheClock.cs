namespace Polystore.Redis.Caching;

/// <summary>
/// The clock of one <see cref="RedisTieredCache"/>: a monotonic millisecond count for L1 lifetimes and Unix
/// milliseconds for entry expiry, both from the configured <see cref="TimeProvider"/>.
/// </summary>
internal sealed class CacheClock
{
    // Null for the system clock, which is then read directly: an L1 hit reads the clock on every call.
    private readonly TimeProvider? _time;
    private readonly long _origin;

    public CacheClock(TimeProvider time)
    {
        if (time == TimeProvider.System) return;
        _time = time;
        _origin = time.GetTimestamp();
    }

    /// <summary>Monotonic milliseconds (arbitrary origin), for L1 freshness.</summary>
    public long TickMs => _time is null ? Environment.TickCount64 : (long)_time.GetElapsedTime(_origin).TotalMilliseconds;

    /// <summary>Milliseconds since the Unix epoch, for the logical expiry stored with each entry.</summary>
    public long UnixMs => _time is null ? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() : _time.GetUtcNow().ToUnixTimeMilliseconds();
}

namespace Polystore.Redis.RateLimiting;

/// <summary>The outcome of one rate-limit call.</summary>
/// <param name="Allowed">Whether the permits were admitted (and recorded).</param>
/// <param name="Remaining">Permits still free in the window after this call.</param>
/// <param name="RetryAfter">When denied: how long until enough of the oldest entries leave the window; zero when allowed.</param>
/// <param name="Reset">How long until the window is empty again.</param>
/// <param name="ServerTimeMicroseconds">Redis server time (µs since the Unix epoch) the decision was taken at; 0 for a fallback decision.</param>
/// <param name="IsFallback">True when Redis was unavailable and the decision came from <see cref="RedisSlidingWindowOptions.OnRedisFailure"/>.</param>
public readonly record struct RateLimitDecision(bool Allowed, long Remaining, TimeSpan RetryAfter, TimeSpan Reset, long ServerTimeMicroseconds, bool IsFallback = false);

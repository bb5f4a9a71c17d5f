namespace Polystore.Redis.RateLimiting;

/// <summary>What the limiter does when Redis cannot be reached.</summary>
public enum RedisFailureMode
{
    /// <summary>Deny the request (safe for abuse protection). Default.</summary>
    FailClosed,

    /// <summary>Allow the request (safe for availability).</summary>
    FailOpen,

    /// <summary>Throw the Redis exception to the caller.</summary>
    Throw,
}

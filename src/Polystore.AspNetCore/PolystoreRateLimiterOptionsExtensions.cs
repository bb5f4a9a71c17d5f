using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Polystore.Redis.RateLimiting;

namespace Polystore.AspNetCore;

/// <summary>Polystore's rate limiters as ASP.NET Core rate-limiting policies.</summary>
public static class PolystoreRateLimiterOptionsExtensions
{
    /// <summary>
    /// Adds the policy <paramref name="policyName"/> (for <c>RequireRateLimiting</c> or <c>[EnableRateLimiting]</c>):
    /// Polystore's exact sliding-window limiter in Redis, shared by every instance of the application, with one window
    /// per partition that <paramref name="partitionBy"/> picks from the request (a user id, an API key, a client
    /// address). Requests for which it returns null share one partition.
    /// </summary>
    /// <remarks>
    /// A rejected request gets 429 with <c>Retry-After</c> (whole seconds until a permit frees, from the lease's
    /// RetryAfter) and the IETF <c>RateLimit-Policy: "name";q=limit;w=window-seconds</c> and
    /// <c>RateLimit: "name";r=remaining;t=seconds</c> headers. The limiter is built on the first request from the
    /// <see cref="StackExchange.Redis.IConnectionMultiplexer"/> in the application's services; while Redis is
    /// unavailable, <see cref="RedisSlidingWindowOptions.OnRedisFailure"/> decides. Each distinct partition keeps a
    /// small limiter in memory for about a window after its last admission, so partition by something bounded
    /// (authenticated ids rather than arbitrary header values).
    /// </remarks>
    /// <param name="options">The rate-limiter options (inside <c>services.AddRateLimiter(...)</c>).</param>
    /// <param name="policyName">The policy's name: printable ASCII without <c>:</c>, <c>"</c> or <c>\</c> (it names the
    /// policy in the headers and, before a <c>:</c>, in the Redis keys).</param>
    /// <param name="partitionBy">Picks the partition key of a request; null for none.</param>
    /// <param name="limiterOptions">The limit, the window, the Redis key prefix and the failure mode; validated here.</param>
    /// <exception cref="ArgumentException">The policy name is not usable, or a policy of that name exists.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the exception names it).</exception>
    public static RateLimiterOptions AddPolystoreSlidingWindowPolicy(this RateLimiterOptions options, string policyName,
        Func<HttpContext, string?> partitionBy, RedisSlidingWindowOptions limiterOptions)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(policyName);
        ArgumentNullException.ThrowIfNull(partitionBy);
        ArgumentNullException.ThrowIfNull(limiterOptions);
        foreach (var c in policyName)
        {
            if (c is < ' ' or > '~' or ':' or '"' or '\\')
                throw new ArgumentException($"the policy name '{policyName}' must be printable ASCII without ':', '\"' or '\\': it names the policy in the RateLimit headers and, before a ':', in the Redis keys.", nameof(policyName));
        }
        return options.AddPolicy(policyName, new SlidingWindowPolicy(policyName, partitionBy, limiterOptions.Validated()));
    }
}

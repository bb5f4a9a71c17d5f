using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polystore.Redis.RateLimiting;
using StackExchange.Redis;

namespace Polystore.AspNetCore;

/// <summary>
/// One named policy over a <see cref="RedisSlidingWindowRateLimiter"/>, built from the application's
/// <see cref="IConnectionMultiplexer"/> on the first request. Each partition is one Redis key,
/// <c>policy:partition</c>, so policies never share a window.
/// </summary>
internal sealed class SlidingWindowPolicy : IRateLimiterPolicy<string>
{
    // Lease metadata RedisRateLimitLease carries besides RetryAfter.
    private static readonly MetadataName<long> Remaining = MetadataName.Create<long>("REMAINING");

    private readonly string _name;
    private readonly Func<HttpContext, string?> _partitionBy;
    private readonly RedisSlidingWindowOptions _options;
    private readonly string _policyHeader;
    private readonly Func<string, RateLimiter> _createPartition;
    private RedisSlidingWindowRateLimiter? _limiter;

    public SlidingWindowPolicy(string name, Func<HttpContext, string?> partitionBy, RedisSlidingWindowOptions options)
    {
        _name = name;
        _partitionBy = partitionBy;
        _options = options;
        _policyHeader = string.Create(CultureInfo.InvariantCulture, $"\"{name}\";q={options.PermitLimit};w={Seconds(options.Window)}");
        var keyStart = name + ":";
        _createPartition = partition => _limiter!.ForKey(keyStart + RedisKeyText(partition));
        OnRejected = RejectAsync;
    }

    public Func<OnRejectedContext, CancellationToken, ValueTask>? OnRejected { get; }

    public RateLimitPartition<string> GetPartition(HttpContext httpContext)
    {
        if (Volatile.Read(ref _limiter) is null) CreateLimiter(httpContext.RequestServices);
        // Requests without a partition key share one partition: leaving the key out must not escape the limit.
        return RateLimitPartition.Get(_partitionBy(httpContext) ?? "", _createPartition);
    }

    /// <summary>
    /// A partition key as Redis key text. A key from request data may hold a lone surrogate (a JSON "\\ud800" escape),
    /// which has no UTF-8 form and which the limiter refuses; such a key is written with backslash escapes ("\\" and
    /// "\\uD800"), and so is any key holding a backslash, so two different keys never meet in one window.
    /// </summary>
    internal static string RedisKeyText(string partition)
    {
        if (partition.AsSpan().IndexOf('\\') < 0 && partition.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0) return partition;
        var text = new System.Text.StringBuilder(partition.Length + 8);
        for (var i = 0; i < partition.Length; i++)
        {
            var c = partition[i];
            if (c == '\\') text.Append("\\\\");
            else if (char.IsHighSurrogate(c) && i + 1 < partition.Length && char.IsLowSurrogate(partition[i + 1])) text.Append(c).Append(partition[++i]);
            else if (char.IsSurrogate(c)) text.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            else text.Append(c);
        }
        return text.ToString();
    }

    private void CreateLimiter(IServiceProvider services)
    {
        var redis = services.GetService<IConnectionMultiplexer>()
            ?? throw new InvalidOperationException($"the rate-limiting policy '{_name}' needs an IConnectionMultiplexer in the application's services: register Redis (for example with AddPolystore(...).AddRedis()) before the first request.");
        Interlocked.CompareExchange(ref _limiter, new RedisSlidingWindowRateLimiter(redis, _options, services.GetService<ILoggerFactory>()), null);
    }

    private ValueTask RejectAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var response = context.HttpContext.Response;
        response.StatusCode = StatusCodes.Status429TooManyRequests;
        var lease = context.Lease;
        var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, Seconds(wait)) : (long?)null;
        var remaining = lease.TryGetMetadata(Remaining, out var left) ? Math.Max(0, left) : 0;
        response.Headers["RateLimit-Policy"] = _policyHeader;
        response.Headers["RateLimit"] = retryAfter is { } t
            ? string.Create(CultureInfo.InvariantCulture, $"\"{_name}\";r={remaining};t={t}")
            : string.Create(CultureInfo.InvariantCulture, $"\"{_name}\";r={remaining}");
        if (retryAfter is { } seconds) response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        return default;
    }

    // Whole seconds, rounded up: a client that waits this long is never early.
    private static long Seconds(TimeSpan span) => (long)Math.Ceiling(span.TotalSeconds);
}

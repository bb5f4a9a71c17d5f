using System.Diagnostics;

namespace Polystore.Redis.RateLimiting;

/// <summary>The <c>rate_limit</c> span and the decision counter of <see cref="RedisSlidingWindowRateLimiter"/>.</summary>
internal static class RateLimitTelemetry
{
    public static bool Observed => RedisTelemetry.Source.HasListeners() || RedisMetrics.RateLimitDecisionCounter.Enabled;

    public static Activity? Start(string prefix, int permits)
    {
        var activity = RedisTelemetry.Start("rate_limit", prefix);
        activity?.SetTag("polystore.ratelimit.permits", permits);
        return activity;
    }

    public static void Decided(Activity? activity, string prefix, RateLimitDecision decision)
    {
        if (RedisMetrics.RateLimitDecisionCounter.Enabled)
            RedisMetrics.RateLimitDecisionCounter.Add(1, new KeyValuePair<string, object?>("outcome", decision.Allowed ? "allowed" : "denied"), new KeyValuePair<string, object?>("prefix", prefix));
        if (activity is not { IsAllDataRequested: true }) return;
        activity.SetTag("polystore.ratelimit.allowed", decision.Allowed);
        activity.SetTag("polystore.ratelimit.remaining", decision.Remaining);
        activity.SetTag("polystore.ratelimit.fallback", decision.IsFallback);
        if (!decision.Allowed) activity.SetTag("polystore.ratelimit.retry_after", decision.RetryAfter.TotalSeconds);
    }
}

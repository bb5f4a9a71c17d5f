using System.Threading.RateLimiting;

namespace Polystore.Redis.Tests.Contract;

/// <summary>The in-box <see cref="SlidingWindowRateLimiter"/>, replenished by hand (no timer) so every step is deterministic.</summary>
internal sealed class InBoxSubject : ILimiterSubject
{
    public string Name => "in-box";

    public bool DecidesSynchronously => true;

    // A window of one tick lets TryReplenish slide it on demand.
    public RateLimiter CreateLimiter(int permitLimit) => new SlidingWindowRateLimiter(Options(permitLimit, TimeSpan.FromTicks(1)));

    // PartitionedRateLimiter.Create calls TryReplenish on its own timer: a long window keeps that from freeing permits mid-test.
    public PartitionedRateLimiter<string> CreatePartitioned(int permitLimit) =>
        PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetSlidingWindowLimiter(key, _ => Options(permitLimit, TimeSpan.FromHours(1))));

    /// <summary>A limiter whose window nothing slides (for partitions inside PartitionedRateLimiter.Create).</summary>
    public static RateLimiter CreateUnreplenished(int permitLimit) => new SlidingWindowRateLimiter(Options(permitLimit, TimeSpan.FromHours(1)));

    public Task SettleAsync() => Task.CompletedTask;

    public Task PassWindowAsync(RateLimiter limiter)
    {
        Assert.True(((SlidingWindowRateLimiter)limiter).TryReplenish());
        return Task.CompletedTask;
    }

    public Task<RateLimitLease> CompleteAsync(ValueTask<RateLimitLease> call, string what) => Poll.WithinAsync(call.AsTask(), what);

    public ValueTask DisposeAsync() => default;

    private static SlidingWindowRateLimiterOptions Options(int permitLimit, TimeSpan window) => new()
    {
        PermitLimit = permitLimit,
        QueueLimit = 0,
        Window = window,
        SegmentsPerWindow = 1,
        AutoReplenishment = false,
    };
}

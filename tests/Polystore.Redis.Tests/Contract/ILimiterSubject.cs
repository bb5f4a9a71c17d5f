using System.Threading.RateLimiting;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// One of the two limiters the contract tests run against with the same scenario: Polystore's Redis limiter
/// (through its adapters) or the in-box <see cref="SlidingWindowRateLimiter"/>, built with equivalent options
/// (no queue: the Redis limiter has none).
/// </summary>
internal interface ILimiterSubject : IAsyncDisposable
{
    /// <summary>"polystore" or "in-box".</summary>
    string Name { get; }

    /// <summary>
    /// Whether AttemptAcquire takes decisions. The in-box limiter decides in memory; the Redis limiter can only
    /// decide with a round trip, which AttemptAcquire must never wait for, so its AttemptAcquire never admits.
    /// </summary>
    bool DecidesSynchronously { get; }

    /// <summary>A limiter over a key (or of its own) that nothing else uses.</summary>
    RateLimiter CreateLimiter(int permitLimit);

    /// <summary>A partitioned limiter whose partitions nothing else uses; its windows never slide during a test.</summary>
    PartitionedRateLimiter<string> CreatePartitioned(int permitLimit);

    /// <summary>
    /// Returns once every call made so far has had its answer (for the Redis limiter: a round trip through each
    /// limiter behind the calls already queued; the in-box limiter answers at once). After it, a call that is not
    /// complete is waiting, not on its way.
    /// </summary>
    Task SettleAsync();

    /// <summary>Moves <paramref name="limiter"/> past its window: every permit it admitted is free again.</summary>
    Task PassWindowAsync(RateLimiter limiter);

    /// <summary>Awaits a call that should complete now that its permits are free (bounded; fails naming <paramref name="what"/>).</summary>
    Task<RateLimitLease> CompleteAsync(ValueTask<RateLimitLease> call, string what);
}

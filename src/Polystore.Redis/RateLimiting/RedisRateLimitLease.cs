using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>A lease carrying the decision; RetryAfter is exposed through <see cref="MetadataName.RetryAfter"/>.</summary>
internal sealed class RedisRateLimitLease(RateLimitDecision decision) : RateLimitLease
{
    private static readonly string[] Names = [MetadataName.RetryAfter.Name, "REMAINING", "RESET"];

    public RateLimitDecision Decision { get; } = decision;

    public override bool IsAcquired => Decision.Allowed;

    public override IEnumerable<string> MetadataNames => Names;

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        switch (metadataName)
        {
            case var n when n == MetadataName.RetryAfter.Name && !Decision.Allowed:
                metadata = Decision.RetryAfter;
                return true;
            case "REMAINING":
                metadata = Decision.Remaining;
                return true;
            case "RESET":
                metadata = Decision.Reset;
                return true;
            default:
                metadata = null;
                return false;
        }
    }
}

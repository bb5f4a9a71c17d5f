using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>A lease that is not acquired and carries no decision, only why (<see cref="MetadataName.ReasonPhrase"/>).</summary>
internal sealed class UnacquiredLease(string reason) : RateLimitLease
{
    /// <summary>What AttemptAcquire returns: only Redis decides, and AttemptAcquire never waits on the network.</summary>
    public static readonly UnacquiredLease Undecided = new("Not decided: this limiter decides in Redis, so only AcquireAsync takes decisions (AttemptAcquire never waits on the network).");

    /// <summary>What a 0-permit AcquireAsync that was still waiting gets when the limiter is disposed.</summary>
    public static readonly UnacquiredLease Disposed = new("The rate limiter was disposed while the call waited for a free permit.");

    private static readonly string[] Names = [MetadataName.ReasonPhrase.Name];

    public override bool IsAcquired => false;

    public override IEnumerable<string> MetadataNames => Names;

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        metadata = metadataName == MetadataName.ReasonPhrase.Name ? reason : null;
        return metadata is not null;
    }
}

using Microsoft.Extensions.Internal;
using Microsoft.Extensions.Time.Testing;

namespace Polystore.Redis.Tests.Contract;

/// <summary>The in-box memory caches' clock, read from the same fake time the Polystore subjects use.</summary>
internal sealed class FakeSystemClock(FakeTimeProvider time) : ISystemClock
{
    public DateTimeOffset UtcNow => time.GetUtcNow();
}

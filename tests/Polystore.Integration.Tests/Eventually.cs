using System.Diagnostics;

namespace Polystore.Integration.Tests;

/// <summary>Bounded waits on observable state: poll until a condition holds, fail with what was awaited when it does not.</summary>
internal static class Eventually
{
    /// <summary>Generous, because the servers are shared with every test class running in parallel.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan PollEvery = TimeSpan.FromMilliseconds(20);

    public static async Task UntilAsync(Func<Task<bool>> condition, string what, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var started = Stopwatch.GetTimestamp();
        while (!await condition())
        {
            if (Stopwatch.GetElapsedTime(started) > limit) Assert.Fail($"timed out after {limit.TotalSeconds:0} s waiting until {what}");
            await Task.Delay(PollEvery, cancellationToken);
        }
    }

    public static Task UntilAsync(Func<bool> condition, string what, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
        UntilAsync(() => Task.FromResult(condition()), what, cancellationToken, timeout);
}

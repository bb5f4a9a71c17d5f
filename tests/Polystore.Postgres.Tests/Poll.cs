using System.Diagnostics;

namespace Polystore.Postgres.Tests;

/// <summary>Waits on observable state with a bound, failing with a message that says what never happened.</summary>
public static class Poll
{
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan bound, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(watch.Elapsed < bound, $"{what}: not within {bound.TotalSeconds:0} s");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }
}

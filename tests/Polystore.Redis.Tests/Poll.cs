using System.Diagnostics;

namespace Polystore.Redis.Tests;

/// <summary>Waits for observable state with a bound; never a bare sleep.</summary>
internal static class Poll
{
    /// <summary>
    /// Checks <paramref name="condition"/> every few milliseconds until it holds; fails naming <paramref name="what"/> after
    /// <paramref name="bound"/> (default 10 s), with what <paramref name="state"/> then says when given.
    /// </summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, CancellationToken ct, TimeSpan? bound = null, Func<Task<string>>? state = null)
    {
        var limit = bound ?? TimeSpan.FromSeconds(10);
        var sw = Stopwatch.StartNew();
        while (!await condition())
        {
            if (sw.Elapsed > limit)
                Assert.Fail($"timed out after {limit.TotalSeconds:0.#} s waiting for {what}{(state is null ? "" : ": " + await state())}");
            await Task.Delay(10, ct);
        }
    }

    /// <inheritdoc cref="UntilAsync(Func{Task{bool}}, string, CancellationToken, TimeSpan?)"/>
    public static Task UntilAsync(Func<bool> condition, string what, CancellationToken ct, TimeSpan? bound = null) =>
        UntilAsync(() => Task.FromResult(condition()), what, ct, bound);

    /// <summary>Awaits <paramref name="task"/>, failing with <paramref name="what"/> when it has not completed within <paramref name="bound"/> (default 10 s).</summary>
    public static async Task<T> WithinAsync<T>(Task<T> task, string what, TimeSpan? bound = null)
    {
        var limit = bound ?? TimeSpan.FromSeconds(10);
        if (await Task.WhenAny(task, Task.Delay(limit, TestContext.Current.CancellationToken)) != task)
            Assert.Fail($"{what} did not complete within {limit.TotalSeconds:0.#} s");
        return await task;
    }

    /// <inheritdoc cref="WithinAsync{T}(Task{T}, string, TimeSpan?)"/>
    public static async Task WithinAsync(Task task, string what, TimeSpan? bound = null)
    {
        var limit = bound ?? TimeSpan.FromSeconds(10);
        if (await Task.WhenAny(task, Task.Delay(limit, TestContext.Current.CancellationToken)) != task)
            Assert.Fail($"{what} did not complete within {limit.TotalSeconds:0.#} s");
        await task;
    }
}

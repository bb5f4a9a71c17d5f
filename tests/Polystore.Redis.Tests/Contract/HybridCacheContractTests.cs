using Microsoft.Extensions.Caching.Hybrid;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// The same <see cref="HybridCache"/> scenarios against the in-box default and Polystore's Redis adapter, with the
/// same expected outcome. Time moves on a fake clock, so no scenario waits.
/// </summary>
public sealed class HybridCacheContractTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed record Item(int Id, string Name);

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task A_miss_runs_the_factory_with_its_state_and_a_hit_does_not(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var calls = 0;
        for (var i = 0; i < 3; i++)
        {
            var item = await subject.Cache.GetOrCreateAsync("item:1", (Id: 1, Name: "Ada"), (state, _) =>
            {
                Interlocked.Increment(ref calls);
                return ValueTask.FromResult(new Item(state.Id, state.Name));
            }, cancellationToken: Ct);
            Assert.Equal(new Item(1, "Ada"), item);
        }
        Assert.Equal(1, calls);
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task A_stampede_runs_the_factory_once_and_every_caller_gets_its_value(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var calls = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callers = Enumerable.Range(0, 64).Select(_ => subject.Cache.GetOrCreateAsync("hot", async _ =>
        {
            Interlocked.Increment(ref calls);
            await release.Task;
            return new Item(7, "hot");
        }, cancellationToken: Ct).AsTask()).ToArray();
        // Every caller has asked before the factory can finish: they all missed the key together.
        release.SetResult();
        var results = await Task.WhenAll(callers);

        Assert.Equal(1, calls);
        Assert.All(results, r => Assert.Equal(new Item(7, "hot"), r));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task A_failing_factory_reaches_every_waiting_caller_and_caches_nothing(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callers = Enumerable.Range(0, 16).Select(_ => subject.Cache.GetOrCreateAsync<Item>("failing", async _ =>
        {
            await release.Task;
            throw new InvalidOperationException("source down");
        }, cancellationToken: Ct).AsTask()).ToArray();
        release.SetResult();
        foreach (var caller in callers)
            Assert.Equal("source down", (await Assert.ThrowsAsync<InvalidOperationException>(() => caller)).Message);

        var calls = 0;
        var item = await subject.Cache.GetOrCreateAsync("failing", _ => { calls++; return ValueTask.FromResult(new Item(1, "back")); }, cancellationToken: Ct);
        Assert.Equal((1, new Item(1, "back")), (calls, item));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task A_null_result_is_cached_like_any_value(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var calls = 0;
        for (var i = 0; i < 3; i++)
            Assert.Null(await subject.Cache.GetOrCreateAsync<Item?>("nobody", _ => { calls++; return ValueTask.FromResult<Item?>(null); }, cancellationToken: Ct));
        Assert.Equal(1, calls);
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task Value_types_are_cached(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var calls = 0;
        for (var i = 0; i < 3; i++)
            Assert.Equal(0, await subject.Cache.GetOrCreateAsync("zero", _ => { calls++; return ValueTask.FromResult(0); }, cancellationToken: Ct));
        Assert.Equal(1, calls);
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task SetAsync_overwrites_and_the_next_read_returns_it_without_the_factory(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        await subject.Cache.GetOrCreateAsync("item", _ => ValueTask.FromResult(new Item(1, "old")), cancellationToken: Ct);
        await subject.Cache.SetAsync("item", new Item(1, "new"), cancellationToken: Ct);
        await subject.Cache.SetAsync<Item?>("none", null, cancellationToken: Ct);

        Assert.Equal(new Item(1, "new"), await subject.Cache.GetOrCreateAsync("item", _ => ValueTask.FromResult(new Item(0, "factory")), cancellationToken: Ct));
        Assert.Null(await subject.Cache.GetOrCreateAsync<Item?>("none", _ => ValueTask.FromResult<Item?>(new Item(0, "factory")), cancellationToken: Ct));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task RemoveAsync_makes_the_next_read_run_the_factory(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        await subject.Cache.SetAsync("a", 1, cancellationToken: Ct);
        await subject.Cache.SetAsync("b", 2, cancellationToken: Ct);
        await subject.Cache.SetAsync("c", 3, cancellationToken: Ct);
        await subject.Cache.RemoveAsync("a", Ct);
        await subject.Cache.RemoveAsync(["b", "never-set"], Ct);

        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("a", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("b", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        Assert.Equal(3, await subject.Cache.GetOrCreateAsync("c", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task RemoveByTagAsync_removes_the_entries_with_that_tag_only(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        await subject.Cache.GetOrCreateAsync("user:1", _ => ValueTask.FromResult(1), tags: ["users", "eu"], cancellationToken: Ct);
        await subject.Cache.SetAsync("user:2", 2, tags: ["users"], cancellationToken: Ct);
        await subject.Cache.SetAsync("order:1", 3, tags: ["orders", "eu"], cancellationToken: Ct);
        await subject.Cache.SetAsync("plain", 4, cancellationToken: Ct);

        await subject.Cache.RemoveByTagAsync("users", Ct);
        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("user:1", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("user:2", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        Assert.Equal(3, await subject.Cache.GetOrCreateAsync("order:1", _ => ValueTask.FromResult(-1), cancellationToken: Ct));

        await subject.Cache.RemoveByTagAsync(["eu", "no-such-tag"], Ct);
        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("order:1", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        Assert.Equal(4, await subject.Cache.GetOrCreateAsync("plain", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task The_wildcard_tag_removes_every_entry_and_cannot_tag_one(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        await subject.Cache.SetAsync("tagged", 1, tags: ["t"], cancellationToken: Ct);
        await subject.Cache.SetAsync("untagged", 2, cancellationToken: Ct);
        await subject.Cache.RemoveByTagAsync("*", Ct);

        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("tagged", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        Assert.Equal(-1, await subject.Cache.GetOrCreateAsync("untagged", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await subject.Cache.SetAsync("k", 1, tags: ["*"], cancellationToken: Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await subject.Cache.GetOrCreateAsync("k", _ => ValueTask.FromResult(1), tags: [""], cancellationToken: Ct));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task An_entry_expires_after_its_expiration(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var options = new HybridCacheEntryOptions { Expiration = TimeSpan.FromMinutes(1) };
        var calls = 0;
        ValueTask<int> Factory(CancellationToken _) => ValueTask.FromResult(++calls);

        Assert.Equal(1, await subject.Cache.GetOrCreateAsync("k", Factory, options, cancellationToken: Ct));
        subject.Time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(1, await subject.Cache.GetOrCreateAsync("k", Factory, options, cancellationToken: Ct));
        subject.Time.Advance(TimeSpan.FromMinutes(2)); // past the expiration and any jitter on it
        Assert.Equal(2, await subject.Cache.GetOrCreateAsync("k", Factory, options, cancellationToken: Ct));
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task DisableUnderlyingData_only_reads(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var readOnly = new HybridCacheEntryOptions { Flags = HybridCacheEntryFlags.DisableUnderlyingData };
        var calls = 0;
        Assert.Equal(0, await subject.Cache.GetOrCreateAsync("k", _ => { calls++; return ValueTask.FromResult(5); }, readOnly, cancellationToken: Ct));
        await subject.Cache.SetAsync("k", 9, cancellationToken: Ct);
        Assert.Equal(9, await subject.Cache.GetOrCreateAsync("k", _ => { calls++; return ValueTask.FromResult(5); }, readOnly, cancellationToken: Ct));
        Assert.Equal(0, calls);
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task Keys_that_cannot_be_cached_are_served_by_the_factory_every_time(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        foreach (var key in new[] { " ", "tab\there", new string('k', 1025) })
        {
            var calls = 0;
            for (var i = 0; i < 2; i++)
                Assert.Equal(3, await subject.Cache.GetOrCreateAsync(key, _ => { calls++; return ValueTask.FromResult(3); }, cancellationToken: Ct));
            Assert.Equal(2, calls);
        }
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task A_caller_that_gives_up_stops_waiting_and_the_others_still_get_the_value(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        async ValueTask<int> Slow(CancellationToken _)
        {
            Interlocked.Increment(ref calls);
            started.TrySetResult();
            await release.Task;
            return 42;
        }
        var patient = subject.Cache.GetOrCreateAsync("slow", Slow, cancellationToken: Ct).AsTask();
        await Poll.WithinAsync(started.Task, "the factory's start");
        using var giveUp = new CancellationTokenSource();
        var impatient = subject.Cache.GetOrCreateAsync("slow", Slow, cancellationToken: giveUp.Token).AsTask();
        await giveUp.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient);
        release.SetResult();
        Assert.Equal(42, await patient);
        Assert.Equal(42, await subject.Cache.GetOrCreateAsync("slow", Slow, cancellationToken: Ct));
        Assert.Equal(1, calls);
    }

    [Theory]
    [MemberData(nameof(HybridCacheSubject.Kinds), MemberType = typeof(HybridCacheSubject))]
    public async Task A_token_cancelled_before_the_call_runs_nothing(string kind)
    {
        await using var subject = HybridCacheSubject.Create(kind);
        var calls = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await subject.Cache.GetOrCreateAsync("k", _ => { calls++; return ValueTask.FromResult(1); }, cancellationToken: new CancellationToken(true)));
        Assert.Equal(0, calls);
    }
}

using System.Text;
using Microsoft.Extensions.Caching.Distributed;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// The same <see cref="IDistributedCache"/> scenarios against the in-box memory cache and Polystore's Redis adapter,
/// with the same expected outcome. Time moves on a fake clock, so no scenario waits.
/// </summary>
public sealed class DistributedCacheContractTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static DistributedCacheEntryOptions Relative(TimeSpan ttl) => new() { AbsoluteExpirationRelativeToNow = ttl };

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task A_missing_key_reads_as_null(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        Assert.Null(await subject.Cache.GetAsync("absent", Ct));
        await subject.Cache.RefreshAsync("absent", Ct);
        await subject.Cache.RemoveAsync("absent", Ct);
        Assert.Null(await subject.Cache.GetAsync("absent", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task Bytes_round_trip_exactly_and_a_set_overwrites(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        byte[] binary = [0, 1, 2, 127, 128, 254, 255];
        await subject.Cache.SetAsync("binary", binary, Relative(TimeSpan.FromMinutes(5)), Ct);
        await subject.Cache.SetAsync("empty", [], Relative(TimeSpan.FromMinutes(5)), Ct);
        await subject.Cache.SetAsync("text", Bytes("first"), Relative(TimeSpan.FromMinutes(5)), Ct);
        await subject.Cache.SetAsync("text", Bytes("second"), Relative(TimeSpan.FromMinutes(5)), Ct);

        Assert.Equal(binary, await subject.Cache.GetAsync("binary", Ct));
        Assert.Equal(Array.Empty<byte>(), await subject.Cache.GetAsync("empty", Ct));
        Assert.Equal("second", await subject.Cache.GetStringAsync("text", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task Remove_deletes_the_entry(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetStringAsync("gone", "value", Ct);
        await subject.Cache.SetStringAsync("kept", "value", Ct);
        await subject.Cache.RemoveAsync("gone", Ct);

        Assert.Null(await subject.Cache.GetAsync("gone", Ct));
        Assert.Equal("value", await subject.Cache.GetStringAsync("kept", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task A_relative_absolute_expiration_ends_the_entry_exactly_then(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetAsync("k", Bytes("v"), Relative(TimeSpan.FromMinutes(10)), Ct);

        subject.Time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.Equal("v", await subject.Cache.GetStringAsync("k", Ct));
        subject.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Null(await subject.Cache.GetAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task An_absolute_expiration_date_ends_the_entry_then_and_reads_do_not_extend_it(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetAsync("k", Bytes("v"), new DistributedCacheEntryOptions { AbsoluteExpiration = subject.Time.GetUtcNow().AddMinutes(10) }, Ct);

        subject.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal("v", await subject.Cache.GetStringAsync("k", Ct));
        await subject.Cache.RefreshAsync("k", Ct);
        subject.Time.Advance(TimeSpan.FromMinutes(5));
        Assert.Null(await subject.Cache.GetAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task The_relative_expiration_wins_over_the_date_when_both_are_given(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetAsync("k", Bytes("v"), new DistributedCacheEntryOptions
        {
            AbsoluteExpiration = subject.Time.GetUtcNow().AddHours(1),
            AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(1),
        }, Ct);

        subject.Time.Advance(TimeSpan.FromMinutes(2));
        Assert.Null(await subject.Cache.GetAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task An_absolute_expiration_already_past_stores_nothing_and_removes_the_old_value(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetStringAsync("k", "old", Ct);
        await subject.Cache.SetAsync("k", Bytes("new"), new DistributedCacheEntryOptions { AbsoluteExpiration = subject.Time.GetUtcNow().AddMinutes(-1) }, Ct);

        Assert.Null(await subject.Cache.GetAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task A_sliding_entry_lives_while_it_is_read(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetAsync("k", Bytes("v"), new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) }, Ct);

        for (var i = 0; i < 3; i++)
        {
            subject.Time.Advance(TimeSpan.FromMinutes(6));
            Assert.Equal("v", await subject.Cache.GetStringAsync("k", Ct)); // 18 minutes in: only the reads kept it
        }
        subject.Time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        Assert.Null(await subject.Cache.GetAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task Refresh_slides_a_sliding_entry_without_reading_it(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetAsync("k", Bytes("v"), new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) }, Ct);

        subject.Time.Advance(TimeSpan.FromMinutes(6));
        subject.Cache.Refresh("k");
        subject.Time.Advance(TimeSpan.FromMinutes(6));
        await subject.Cache.RefreshAsync("k", Ct);
        subject.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal("v", await subject.Cache.GetStringAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task Sliding_never_carries_an_entry_past_its_absolute_expiration(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await subject.Cache.SetAsync("k", Bytes("v"), new DistributedCacheEntryOptions
        {
            SlidingExpiration = TimeSpan.FromMinutes(10),
            AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(15),
        }, Ct);

        subject.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal("v", await subject.Cache.GetStringAsync("k", Ct));
        subject.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal("v", await subject.Cache.GetStringAsync("k", Ct));
        subject.Time.Advance(TimeSpan.FromMinutes(4)); // 16 minutes in, 4 after the last read
        Assert.Null(await subject.Cache.GetAsync("k", Ct));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task The_blocking_methods_do_what_the_asynchronous_ones_do(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        subject.Cache.Set("k", Bytes("v"), new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) });
        subject.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(Bytes("v"), subject.Cache.Get("k"));
        subject.Time.Advance(TimeSpan.FromMinutes(6));
        subject.Cache.Refresh("k");
        subject.Time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal("v", subject.Cache.GetString("k"));
        subject.Cache.Remove("k");
        Assert.Null(subject.Cache.Get("k"));
    }

    [Theory]
    [MemberData(nameof(DistributedCacheSubject.Kinds), MemberType = typeof(DistributedCacheSubject))]
    public async Task Null_keys_and_values_are_refused(string kind)
    {
        await using var subject = DistributedCacheSubject.Create(kind);
        await Assert.ThrowsAsync<ArgumentNullException>(() => subject.Cache.GetAsync(null!, Ct));
        await Assert.ThrowsAsync<ArgumentNullException>(() => subject.Cache.SetAsync("k", null!, new DistributedCacheEntryOptions(), Ct));
        await Assert.ThrowsAsync<ArgumentNullException>(() => subject.Cache.RemoveAsync(null!, Ct));
    }
}

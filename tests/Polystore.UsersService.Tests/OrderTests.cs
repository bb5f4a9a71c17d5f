using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Redis.Locking;
using Polystore.Samples.UsersService;
using StackExchange.Redis;

namespace Polystore.UsersService.Tests;

/// <summary>POST /orders under the user's fenced lock, the order totals and the ranking.</summary>
public sealed class OrderTests(OrderTests.Fixture fixture) : IClassFixture<OrderTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        public ServiceApp App { get; private set; } = null!;
        public async ValueTask InitializeAsync() => App = await ServiceApp.StartAsync("svc_orders");
        public async ValueTask DisposeAsync() => await App.DisposeAsync();
    }

    private static CancellationToken Ct => ServiceApp.Ct;
    private ServiceApp App => fixture.App;

    private Task<HttpResponseMessage> OrderAsync(long userId, decimal amount) =>
        App.PostJsonAsync("/orders", string.Create(CultureInfo.InvariantCulture, $"{{\"userId\":{userId},\"amount\":{amount}}}"));

    private async Task<(long Count, decimal Total)> TotalsAsync(long userId)
    {
        using var response = await App.Client.GetAsync($"/users/{userId}/orders", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await ServiceApp.ReadAsync(response);
        return (body.GetProperty("orderCount").GetInt64(), body.GetProperty("orderTotal").GetDecimal());
    }

    [Fact]
    public async Task Concurrent_orders_of_one_user_lose_no_update()
    {
        const int orders = 24;
        var userId = await App.CreateUserAsync($"{Guid.NewGuid():N}@orders.test");

        var responses = await Task.WhenAll(Enumerable.Range(1, orders).Select(async i =>
        {
            using var response = await OrderAsync(userId, i + 0.25m);
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            Assert.Equal($"/users/{userId}/orders", response.Headers.Location!.OriginalString);
            return await ServiceApp.ReadAsync(response);
        }));

        var expectedTotal = Enumerable.Range(1, orders).Sum(i => i + 0.25m);
        Assert.Equal((orders, expectedTotal), await TotalsAsync(userId));
        Assert.Equal(Enumerable.Range(1, orders).Select(i => (long)i), responses.Select(r => r.GetProperty("orderNo").GetInt64()).Order());
        Assert.Equal(orders, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.orders WHERE user_id = $1", userId));
    }

    [Fact]
    public async Task A_holder_whose_lease_ran_out_cannot_write_after_the_next_holder()
    {
        var userId = await App.CreateUserAsync($"{Guid.NewGuid():N}@orders.test");
        // The service's lock on this user, taken with a lease so short it runs out at once.
        var redis = App.Services.GetRequiredService<IConnectionMultiplexer>();
        var stalled = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = $"{App.Schema}:lock", Expiry = TimeSpan.FromMilliseconds(10) });
        var stale = await stalled.AcquireAsync(OrderEndpoints.LockResource(userId), TimeSpan.FromMinutes(1), Ct);
        await ServiceApp.EventuallyAsync(() => Task.FromResult(!stale.IsHeld), "the short lease runs out");

        // The next holder (a request) takes the lock with a newer token and writes.
        using (var response = await OrderAsync(userId, 10m)) Assert.Equal(HttpStatusCode.Created, response.StatusCode);

        // The stalled holder wakes up and tries its write with its older token: refused, nothing written.
        var outcome = await App.Services.GetRequiredService<OrderStore>().PlaceAsync(userId, 99m, stale.FencingToken, Ct);
        Assert.True(outcome.IsStale);
        Assert.Null(outcome.Order);
        Assert.Equal((1, 10m), await TotalsAsync(userId));
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.orders WHERE user_id = $1", userId));
        await stale.DisposeAsync();
    }

    [Fact]
    public async Task Orders_go_on_after_redis_lost_the_fencing_counter()
    {
        var userId = await App.CreateUserAsync($"{Guid.NewGuid():N}@orders.test");
        for (var i = 0; i < 5; i++)
            using (var response = await OrderAsync(userId, 1m)) Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        // What a restart without persistence does to the counter: PostgreSQL has seen token 5, Redis starts again at 1.
        var redis = App.Services.GetRequiredService<IConnectionMultiplexer>();
        var lockKeys = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = $"{App.Schema}:lock" });
        Assert.True(await redis.GetDatabase().KeyDeleteAsync($"{{{App.Schema}:lock:{OrderEndpoints.LockResource(userId)}}}:fence"));

        // The first order after it raises the counter to PostgreSQL's and goes through; so do the next ones.
        for (var i = 0; i < 3; i++)
            using (var response = await OrderAsync(userId, 1m)) Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal((8, 8m), await TotalsAsync(userId));
        Assert.True(await lockKeys.RaiseFencingTokenAsync(OrderEndpoints.LockResource(userId), 0, Ct) >= 8); // never lowered
    }

    [Theory]
    [InlineData("{\"userId\":1}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":0}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":1.005}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":\"5\"}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":1e400}", "amount")]
    [InlineData("{\"userId\":-1,\"amount\":5}", "userId")]
    [InlineData("{\"userId\":1.5,\"amount\":5}", "userId")]
    [InlineData("{\"amount\":5}", "userId")]
    [InlineData("{\"userId\":1,\"amount\":5,\"coupon\":\"x\"}", "coupon")]
    [InlineData("{\"userId\":1,", "body")]
    public async Task A_bad_order_is_a_400_naming_the_field(string body, string field)
    {
        using var response = await App.PostJsonAsync("/orders", body);
        await ServiceApp.AssertFieldErrorAsync(response, field);
    }

    [Fact]
    public async Task An_order_for_a_missing_user_is_a_404_and_writes_nothing()
    {
        using (var response = await OrderAsync(987_654_321, 5m)) await ServiceApp.AssertProblemAsync(response, 404);
        using (var totals = await App.Client.GetAsync("/users/987654321/orders", Ct)) await ServiceApp.AssertProblemAsync(totals, 404);
        Assert.Equal(0, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.orders WHERE user_id = 987654321"));
    }

    [Fact]
    public async Task The_ranking_orders_users_by_order_total_with_ties_sharing_a_rank()
    {
        var ids = new List<long>();
        foreach (var amount in new[] { 1_000m, 3_000m, 3_000m, 2_000m })
        {
            var id = await App.CreateUserAsync($"{Guid.NewGuid():N}@rank.test");
            using (var response = await OrderAsync(id, amount)) Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            ids.Add(id);
        }

        using var ranked = await App.Client.GetAsync("/users/ranked?top=3", Ct);
        Assert.Equal(HttpStatusCode.OK, ranked.StatusCode);
        var rows = (await ServiceApp.ReadAsync(ranked)).EnumerateArray()
            .Select(r => (UserId: r.GetProperty("userId").GetInt64(), Total: r.GetProperty("orderTotal").GetDecimal(), Rank: r.GetProperty("rank").GetInt64(), Dense: r.GetProperty("denseRank").GetInt64()))
            .ToList();

        // Other tests of this class place smaller orders; these four lead.
        Assert.Equal([(3_000m, 1L, 1L), (3_000m, 1L, 1L), (2_000m, 3L, 2L)], rows.Select(r => (r.Total, r.Rank, r.Dense)));
        Assert.Equal(new[] { ids[1], ids[2] }.Order(), rows.Take(2).Select(r => r.UserId).Order());
        Assert.Equal(ids[3], rows[2].UserId);

        using (var bad = await App.Client.GetAsync("/users/ranked?top=0", Ct)) await ServiceApp.AssertFieldErrorAsync(bad, "top");
    }
}

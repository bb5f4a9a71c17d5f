using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;

namespace Polystore.AspNetCore.Tests;

public sealed class SlidingWindowPolicyTests
{
    private const string Policy = "per-client";
    private const int Limit = 3;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly string _prefix = TestServers.UniqueName("aspnet_rl");

    private Task<WebApplication> StartAsync(int limit = Limit, bool withRedis = true) => TestApp.StartAsync(
        services => services.AddRateLimiter(o => o.AddPolystoreSlidingWindowPolicy(Policy,
            context => context.Request.Headers["X-Client"] is { Count: > 0 } client ? client.ToString() : null,
            new RedisSlidingWindowOptions { PermitLimit = limit, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix })),
        app =>
        {
            app.UseRateLimiter();
            app.MapGet("/limited", () => "ok").RequireRateLimiting(Policy);
            app.MapGet("/free", () => "ok");
        },
        withRedis);

    private static Task<HttpResponseMessage> GetAsync(HttpClient client, string path, string? clientId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (clientId is not null) request.Headers.Add("X-Client", clientId);
        return client.SendAsync(request, Ct);
    }

    [Fact]
    public async Task Under_the_limit_requests_pass_and_over_it_they_get_429_with_Retry_After_and_the_RateLimit_headers()
    {
        await using var app = await StartAsync();
        var client = app.GetTestClient();
        for (var i = 0; i < Limit; i++)
        {
            using var ok = await GetAsync(client, "/limited", "alice");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var rejected = await GetAsync(client, "/limited", "alice");
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        var retryAfter = (int)rejected.Headers.RetryAfter!.Delta!.Value.TotalSeconds;
        Assert.InRange(retryAfter, 1, 60); // the oldest admission leaves the one-minute window within a minute
        Assert.Equal($"\"{Policy}\";q={Limit};w=60", Assert.Single(rejected.Headers.GetValues("RateLimit-Policy")));
        Assert.Equal($"\"{Policy}\";r=0;t={retryAfter}", Assert.Single(rejected.Headers.GetValues("RateLimit")));

        // Endpoints without the policy are not limited.
        using var free = await GetAsync(client, "/free", "alice");
        Assert.Equal(HttpStatusCode.OK, free.StatusCode);
    }

    [Fact]
    public async Task Each_partition_has_its_own_window()
    {
        await using var app = await StartAsync();
        var client = app.GetTestClient();
        for (var i = 0; i <= Limit; i++) (await GetAsync(client, "/limited", "alice")).Dispose();
        using (var alice = await GetAsync(client, "/limited", "alice")) Assert.Equal(HttpStatusCode.TooManyRequests, alice.StatusCode);

        for (var i = 0; i < Limit; i++)
        {
            using var bob = await GetAsync(client, "/limited", "bob");
            Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        }
    }

    [Fact]
    public async Task Requests_without_a_partition_key_are_limited_together_and_never_fail()
    {
        await using var app = await StartAsync();
        var client = app.GetTestClient();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < Limit + 2; i++)
        {
            using var response = await GetAsync(client, "/limited", clientId: null);
            statuses.Add(response.StatusCode);
        }

        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, Limit), HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
        using var named = await GetAsync(client, "/limited", "carol");
        Assert.Equal(HttpStatusCode.OK, named.StatusCode);
    }

    [Fact]
    public async Task Concurrent_requests_of_one_partition_are_admitted_exactly_up_to_the_limit()
    {
        const int limit = 10;
        await using var app = await StartAsync(limit);
        var client = app.GetTestClient();
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(() => GetAsync(client, "/limited", "burst"), Ct)));

        Assert.Equal(limit, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(50 - limit, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests), r => Assert.NotNull(r.Headers.RetryAfter));
        foreach (var response in responses) response.Dispose();
    }

    [Fact]
    public async Task Two_applications_share_the_window_in_Redis()
    {
        await using var first = await StartAsync();
        await using var second = await StartAsync();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < Limit + 1; i++)
        {
            using var response = await GetAsync((i % 2 == 0 ? first : second).GetTestClient(), "/limited", "dave");
            statuses.Add(response.StatusCode);
        }

        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, Limit), HttpStatusCode.TooManyRequests], statuses);
    }

    [Fact]
    public void Bad_policy_names_and_options_throw_at_registration_naming_them()
    {
        var options = new RateLimiterOptions();
        static string? Partition(HttpContext _) => null;
        var window = new RedisSlidingWindowOptions();

        var e = Assert.Throws<ArgumentException>(() => options.AddPolystoreSlidingWindowPolicy("api:write", Partition, window));
        Assert.Equal("policyName", e.ParamName);
        Assert.Contains("'api:write'", e.Message, StringComparison.Ordinal);
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => options.AddPolystoreSlidingWindowPolicy("ok", Partition, window with { PermitLimit = 0 }));
        Assert.Equal(nameof(RedisSlidingWindowOptions.PermitLimit), range.ParamName);

        options.AddPolystoreSlidingWindowPolicy("ok", Partition, window);
        Assert.Throws<ArgumentException>(() => options.AddPolystoreSlidingWindowPolicy("ok", Partition, window));
    }

    [Fact]
    public async Task Without_Redis_in_the_services_the_request_fails_saying_what_is_missing()
    {
        await using var app = await StartAsync(withRedis: false);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => GetAsync(app.GetTestClient(), "/limited", "erin"));
        Assert.Contains("IConnectionMultiplexer", e.Message, StringComparison.Ordinal);
        Assert.Contains(Policy, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Partition_keys_become_redis_key_text_one_to_one()
    {
        // (Not theory data: the test runner's serialization would mangle the lone surrogates.)
        Assert.Equal("alice", SlidingWindowPolicy.RedisKeyText("alice"));
        Assert.Equal("\uD83D\uDE00", SlidingWindowPolicy.RedisKeyText("\uD83D\uDE00")); // a surrogate pair is text like any other
        Assert.Equal("a\\uD800", SlidingWindowPolicy.RedisKeyText("a\uD800"));           // a lone one (a JSON escape) has no UTF-8 form
        Assert.Equal("a\\\\uD800", SlidingWindowPolicy.RedisKeyText("a\\uD800"));       // so a backslash is escaped too, or the two would meet
    }
}

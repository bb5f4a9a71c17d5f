using System.Net;
using System.Net.Http.Headers;
using Polystore.Bench.ServiceHost;

namespace Polystore.UsersService.Tests;

/// <summary>
/// The benchmark's host (benchmarks/Polystore.Bench.ServiceHost) answers a profile read the same way with each
/// profile cache, and with each rate limiter admits the limit per key and refuses the rest; real servers throughout.
/// </summary>
public sealed class BenchHostTests
{
    private static CancellationToken Ct => ServiceApp.Ct;

    private static Task<ServiceApp> StartHostAsync(string name, Dictionary<string, string?> settings) =>
        ServiceApp.StartAsync(name, settings, ServiceHostApp.Build);

    private sealed record Read(HttpStatusCode Status, string Body, string? ETag, string? Cache);

    private static async Task<Read> GetAsync(ServiceApp app, string path, string? ifNoneMatch = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (ifNoneMatch is not null) request.Headers.IfNoneMatch.Add(new EntityTagHeaderValue(ifNoneMatch));
        using var response = await app.Client.SendAsync(request, Ct);
        var cache = response.Headers.TryGetValues("X-Cache", out var values) ? values.Single() : null;
        return new Read(response.StatusCode, await response.Content.ReadAsStringAsync(Ct), response.Headers.ETag?.Tag, cache);
    }

    [Fact]
    public async Task Each_profile_cache_answers_a_profile_read_like_the_service()
    {
        // The service as it ships owns the schema; the other hosts read the same users.
        await using var owner = await StartHostAsync("bench_host", new() { [ServiceHostApp.ProfileCacheSetting] = "polystore" });
        var id = await owner.CreateUserAsync($"{Guid.NewGuid():N}@bench.test", "Bench", "eu");
        await ServiceApp.EventuallyAsync(async () => (await GetAsync(owner, $"/users/{id}/profile")).Status == HttpStatusCode.OK, "the new user is projected");
        var expected = await GetAsync(owner, $"/users/{id}/profile");
        Assert.Equal(HttpStatusCode.OK, expected.Status);
        Assert.Equal("\"1\"", expected.ETag);

        foreach (var cache in ServiceHostApp.ProfileCaches)
        {
            await using var host = cache == "polystore" ? null : await StartHostAsync("bench_host", new()
            {
                ["UsersService:Schema"] = owner.Schema,
                [ServiceHostApp.ProfileCacheSetting] = cache,
            });
            var app = host ?? owner;
            var first = await GetAsync(app, $"/users/{id}/profile");
            var second = await GetAsync(app, $"/users/{id}/profile");
            foreach (var read in new[] { first, second })
                Assert.Equal((HttpStatusCode.OK, expected.Body, expected.ETag), (read.Status, read.Body, read.ETag));
            // A cache serves the second read; without one every read is a miss.
            Assert.Equal(cache == "uncached" ? "miss" : "hit", second.Cache);

            var notModified = await GetAsync(app, $"/users/{id}/profile", expected.ETag);
            Assert.Equal((HttpStatusCode.NotModified, "", expected.ETag), (notModified.Status, notModified.Body, notModified.ETag));
            var otherTag = await GetAsync(app, $"/users/{id}/profile", "\"999\"");
            Assert.Equal((HttpStatusCode.OK, expected.Body), (otherTag.Status, otherTag.Body));

            Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(app, $"/users/{id + 1_000_000}/profile")).Status);
            Assert.Equal(HttpStatusCode.BadRequest, (await GetAsync(app, "/users/abc/profile")).Status);
        }
    }

    [Theory]
    [InlineData("polystore")]
    [InlineData("redis-rate-limiting")]
    public async Task Each_limiter_admits_the_limit_per_key_and_counts_it(string limiter)
    {
        await using var app = await StartHostAsync("bench_limit", new()
        {
            [ServiceHostApp.LimiterSetting] = limiter,
            [ServiceHostApp.CountSetting] = "true",
            ["UsersService:RateLimit:PermitLimit"] = "3",
            ["UsersService:RateLimit:Window"] = "00:10:00",
        });
        var id = await app.CreateUserAsync($"{Guid.NewGuid():N}@bench.test");
        // On the store: a read through the API would spend the client address's few permits.
        await ServiceApp.EventuallyAsync(async () => await app.Users.Store.GetAsync(id.ToString(System.Globalization.CultureInfo.InvariantCulture), Ct) is not null, "the new user is projected");
        var prefix = $"k{Guid.NewGuid():N}-";
        var statuses = new List<HttpStatusCode>();
        foreach (var key in new[] { "a", "b" })
        {
            for (var i = 0; i < 5; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/users/{id}/profile");
                request.Headers.Add("X-Api-Key", prefix + key);
                using var response = await app.Client.SendAsync(request, Ct);
                statuses.Add(response.StatusCode);
            }
        }
        HttpStatusCode[] perKey = [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests];
        Assert.Equal([.. perKey, .. perKey], statuses);

        using var counts = await app.Client.GetAsync($"/bench/counts?prefix={prefix}", Ct);
        var body = await ServiceApp.ReadAsync(counts);
        foreach (var key in new[] { "a", "b" })
        {
            var row = body.GetProperty(prefix + key);
            Assert.Equal((3, 2, 0), (row.GetProperty("admitted").GetInt64(), row.GetProperty("rejected").GetInt64(), row.GetProperty("other").GetInt64()));
        }
    }
}

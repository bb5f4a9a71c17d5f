using System.Net;

namespace Polystore.UsersService.Tests;

/// <summary>The API is rate limited per X-Api-Key (else per client address) in Redis; health and OpenAPI are not.</summary>
public sealed class RateLimitTests : IAsyncLifetime
{
    private const int Limit = 3;
    private ServiceApp _app = null!;

    private static CancellationToken Ct => ServiceApp.Ct;

    public async ValueTask InitializeAsync() => _app = await ServiceApp.StartAsync("svc_rl", new Dictionary<string, string?>
    {
        ["UsersService:RateLimit:PermitLimit"] = Limit.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["UsersService:RateLimit:Window"] = "00:10:00",
    });

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private Task<HttpResponseMessage> GetAsync(string path, string? apiKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (apiKey is not null) request.Headers.Add("X-Api-Key", apiKey);
        return _app.Client.SendAsync(request, Ct);
    }

    [Fact]
    public async Task Over_the_limit_a_client_gets_429_with_Retry_After_and_the_RateLimit_headers_and_other_clients_do_not()
    {
        for (var i = 0; i < Limit; i++)
        {
            using var ok = await GetAsync("/users?limit=1", "alice");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var rejected = await GetAsync("/users?limit=1", "alice");
        await ServiceApp.AssertProblemAsync(rejected, 429);
        var retryAfter = rejected.Headers.RetryAfter!.Delta!.Value.TotalSeconds;
        Assert.InRange(retryAfter, 1, 600);
        Assert.Equal($"\"api\";q={Limit};w=600", Assert.Single(rejected.Headers.GetValues("RateLimit-Policy")));
        Assert.Equal($"\"api\";r=0;t={retryAfter}", Assert.Single(rejected.Headers.GetValues("RateLimit")));

        // Another key has its own window; the client's address is a third one.
        using (var bob = await GetAsync("/users?limit=1", "bob")) Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        for (var i = 0; i < Limit; i++)
        {
            using var anonymous = await GetAsync("/users?limit=1", null);
            Assert.Equal(HttpStatusCode.OK, anonymous.StatusCode);
        }
        using (var anonymousOver = await GetAsync("/users?limit=1", null)) Assert.Equal(HttpStatusCode.TooManyRequests, anonymousOver.StatusCode);

        // Probes and the API description are never limited.
        foreach (var path in new[] { "/health/live", "/health/ready", "/openapi/v1.json" })
        {
            using var free = await GetAsync(path, "alice");
            Assert.Equal(HttpStatusCode.OK, free.StatusCode);
        }
    }

    [Fact]
    public async Task Writes_count_against_the_same_window_and_a_rejected_write_writes_nothing()
    {
        for (var i = 0; i < Limit; i++) (await GetAsync("/users?limit=1", "carol")).Dispose();
        var request = new HttpRequestMessage(HttpMethod.Post, "/users")
        {
            Content = new StringContent("{\"email\":\"limited@rl.test\",\"name\":\"L\",\"region\":\"eu\"}", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Api-Key", "carol");

        using var response = await _app.Client.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(0, await _app.ScalarAsync<long>("SELECT count(*) FROM {schema}.users WHERE email = 'limited@rl.test'"));
    }
}

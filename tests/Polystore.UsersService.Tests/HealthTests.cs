using System.Globalization;
using System.Net;
using Polystore.Testing;

namespace Polystore.UsersService.Tests;

/// <summary>Liveness never looks at the stores; readiness turns red while Redis is down and green when it is back.</summary>
public sealed class HealthTests
{
    private static CancellationToken Ct => ServiceApp.Ct;

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(ServiceApp app, string path)
    {
        using var response = await app.Client.GetAsync(path, Ct);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task Readiness_fails_while_Redis_is_down_and_recovers_when_it_is_back_while_liveness_stays_up()
    {
        // A Redis of this test's own: stopping the shared one would disturb every other test.
        await using var redis = new ThrowawayRedis(password: "readiness-test", timeoutSeconds: 2);
        await redis.StartAsync(Ct);
        await using var app = await ServiceApp.StartAsync("svc_health", new Dictionary<string, string?>
        {
            ["Polystore:Redis:connection:url"] = $"redis://127.0.0.1:{redis.Port.ToString(CultureInfo.InvariantCulture)}",
            ["Polystore:Redis:connection:password"] = redis.Password,
            ["Polystore:Redis:pool:connection_timeout"] = "2",
            ["Polystore:Redis:pool:socket_timeout"] = "2",
        });
        var (ready, body) = await GetAsync(app, "/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready);
        Assert.Contains("\"redis\":{\"status\":\"Healthy\"", body, StringComparison.Ordinal);
        Assert.Contains("\"postgres\":{\"status\":\"Healthy\"", body, StringComparison.Ordinal);
        Assert.Contains($"\"outbox:{app.Schema}:user_profiles\"", body, StringComparison.Ordinal);
        var id = await app.CreateUserAsync("health@health.test");
        await ServiceApp.EventuallyAsync(async () => (await GetAsync(app, $"/users/{id}/profile")).Status == HttpStatusCode.OK, "the profile is projected");

        await redis.KillAsync();

        await ServiceApp.EventuallyAsync(async () => (await GetAsync(app, "/health/ready")).Status == HttpStatusCode.ServiceUnavailable, "readiness turns red", attempts: 600);
        (ready, body) = await GetAsync(app, "/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready);
        Assert.Contains("\"redis\":{\"status\":\"Unhealthy\"", body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(app, "/health/live")).Status);
        // Without Redis: profiles come from the read model, orders are refused with 503 and nothing is written.
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(app, $"/users/{id}/profile")).Status);
        using (var order = await app.PostJsonAsync("/orders", $"{{\"userId\":{id},\"amount\":5}}"))
        {
            await ServiceApp.AssertProblemAsync(order, 503);
            Assert.NotNull(order.Headers.RetryAfter);
        }
        Assert.Equal(0, await app.ScalarAsync<long>("SELECT count(*) FROM {schema}.orders"));

        await redis.StartAsync(Ct);

        await ServiceApp.EventuallyAsync(async () => (await GetAsync(app, "/health/ready")).Status == HttpStatusCode.OK, "readiness turns green again", attempts: 1200);
        Assert.Contains("\"redis\":{\"status\":\"Healthy\"", (await GetAsync(app, "/health/ready")).Body, StringComparison.Ordinal);
        await ServiceApp.EventuallyAsync(async () =>
        {
            using var order = await app.PostJsonAsync("/orders", $"{{\"userId\":{id},\"amount\":5}}");
            return order.StatusCode == HttpStatusCode.Created;
        }, "orders are taken again");
    }

    [Fact]
    public async Task Liveness_checks_no_store()
    {
        await using var app = await ServiceApp.StartAsync("svc_live");
        var (status, body) = await GetAsync(app, "/health/live");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("{\"status\":\"Healthy\",\"checks\":{}}", body);
    }
}

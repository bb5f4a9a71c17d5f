using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Redis.Caching;
using Polystore.Testing;

namespace Polystore.AspNetCore.Tests;

/// <summary>ASP.NET Core session, a framework feature built on <see cref="IDistributedCache"/>, running on Polystore's cache.</summary>
public sealed class SessionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // The instances of one application share their data-protection keys (here in memory), so each reads the others' session cookies.
    private readonly IDataProtectionProvider _keys = new EphemeralDataProtectionProvider();

    private readonly string _prefix = TestServers.UniqueName("aspnet_session");

    private Task<WebApplication> StartAsync() => TestApp.StartAsync(
        services =>
        {
            services.AddSingleton(_keys);
            services.AddPolystore(TestServers.ConfigDirectory).AddRedisCache(new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = true });
            services.AddSession(o => o.IdleTimeout = TimeSpan.FromMinutes(20));
        },
        app =>
        {
            app.UseSession();
            app.MapGet("/visit", async (HttpContext context) =>
            {
                await context.Session.LoadAsync(context.RequestAborted);
                var visits = (context.Session.GetInt32("visits") ?? 0) + 1;
                context.Session.SetInt32("visits", visits);
                return visits.ToString(System.Globalization.CultureInfo.InvariantCulture);
            });
        });

    private static async Task<(string Body, string? Cookie)> VisitAsync(HttpClient client, string? cookie)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/visit");
        if (cookie is not null) request.Headers.Add("Cookie", cookie);
        using var response = await client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var setCookie = response.Headers.TryGetValues("Set-Cookie", out var values) ? values.First().Split(';')[0] : null;
        return (await response.Content.ReadAsStringAsync(Ct), setCookie ?? cookie);
    }

    [Fact]
    public async Task Session_state_lives_in_Redis_and_follows_the_user_to_another_instance()
    {
        await using var first = await StartAsync();
        await using var second = await StartAsync();
        var (one, cookie) = await VisitAsync(first.GetTestClient(), null);
        var (two, _) = await VisitAsync(first.GetTestClient(), cookie);
        // Another instance of the application reads the same session.
        var (three, _) = await VisitAsync(second.GetTestClient(), cookie);
        var (fresh, _) = await VisitAsync(second.GetTestClient(), null);

        Assert.Equal(["1", "2", "3", "1"], new[] { one, two, three, fresh });
        Assert.IsType<RedisDistributedCache>(first.Services.GetRequiredService<IDistributedCache>());
    }
}

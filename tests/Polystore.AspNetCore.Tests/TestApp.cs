using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polystore.Redis;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.AspNetCore.Tests;

/// <summary>A minimal application on the in-memory test server, with the private Redis in its services.</summary>
internal static class TestApp
{
    private static readonly Lazy<ConnectionMultiplexer> Redis = new(() => ConnectionMultiplexer.Connect(RedisDriverSettings.Build(TestServers.Redis)));

    public static IConnectionMultiplexer Multiplexer => Redis.Value;

    /// <summary>Builds and starts an application: <paramref name="services"/> registers, <paramref name="pipeline"/> maps.</summary>
    public static async Task<WebApplication> StartAsync(Action<IServiceCollection> services, Action<WebApplication> pipeline, bool withRedis = true)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        if (withRedis) builder.Services.AddSingleton<IConnectionMultiplexer>(Multiplexer);
        services(builder.Services);
        var app = builder.Build();
        pipeline(app);
        await app.StartAsync(TestContext.Current.CancellationToken);
        return app;
    }
}

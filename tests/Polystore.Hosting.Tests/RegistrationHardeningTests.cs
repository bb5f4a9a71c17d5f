using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.RateLimiting;

namespace Polystore.Hosting.Tests;

public sealed class RegistrationHardeningTests
{
    [Fact]
    public void Rate_limiter_options_are_validated_at_registration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Polystore:Redis:Connection:Url"] = "redis://127.0.0.1:6379",
        }).Build();
        var builder = new ServiceCollection().AddLogging().AddPolystore(configuration.GetSection("Polystore"));
        Assert.ThrowsAny<ArgumentException>(() => builder.AddRedisRateLimiter(new RedisSlidingWindowOptions { PermitLimit = 0 }));
    }

    [Fact]
    public void An_empty_store_section_is_configured_and_added_by_the_umbrella()
    {
        var json = """{ "Polystore": { "Redis": {} , "Postgres": { "Connection": { "Host": "127.0.0.1" } } } }""";
        var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
        var section = configuration.GetSection("Polystore");
        var config = PolystoreConfig.Load(section);
        Assert.NotNull(config.Redis);   // the loader: an empty section is the store with every default
        var services = new ServiceCollection().AddLogging();
        services.AddPolystore(section).AddConfiguredStores();
        using var provider = services.BuildServiceProvider();
        Assert.Contains("redis", provider.GetServices<IStoreDoctor>().Select(d => d.Store));
    }
}

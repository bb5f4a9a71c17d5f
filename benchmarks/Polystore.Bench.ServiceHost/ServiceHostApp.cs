using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Polystore.Samples.UsersService;
using RedisRateLimiting;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane.StackExchangeRedis;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace Polystore.Bench.ServiceHost;

/// <summary>
/// The users service as it ships, with two swaps the benchmark needs: the profile cache behind
/// <c>GET /users/{id}/profile</c> (<c>Bench:ProfileCache</c>) and the API's rate limiter (<c>Bench:Limiter</c>);
/// <c>Bench:CountStatuses</c> counts responses per <c>X-Api-Key</c>, served at <c>GET /bench/counts?prefix=</c>.
/// </summary>
internal static class ServiceHostApp
{
    public const string ProfileCacheSetting = "Bench:ProfileCache";
    public const string LimiterSetting = "Bench:Limiter";
    public const string CountSetting = "Bench:CountStatuses";

    /// <summary>The profile caches: Polystore's (what the service ships), none, IDistributedCache over Redis, FusionCache L1+L2.</summary>
    public static readonly string[] ProfileCaches = ["polystore", "uncached", "distributed", "fusion"];

    /// <summary>The API limiters: Polystore's sliding window (what the service ships), RedisRateLimiting's sliding window, none.</summary>
    public static readonly string[] Limiters = ["polystore", "redis-rate-limiting", "none"];

    public static WebApplicationBuilder CreateBuilder(string[] args) => UsersServiceApp.CreateBuilder(args);

    public static WebApplication Build(WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        var cache = Pick(configuration, ProfileCacheSetting, ProfileCaches);
        var limiter = Pick(configuration, LimiterSetting, Limiters);
        var services = builder.Services;
        var schema = configuration["UsersService:Schema"] ?? new UsersServiceOptions().Schema;
        switch (cache)
        {
            case "uncached":
                services.AddSingleton<IProfileSource, UncachedProfileSource>();
                break;
            case "distributed":
                // As Microsoft's docs set it up (AddStackExchangeRedisCache with a configuration and an instance name),
                // on a connection of its own made from the service's Redis settings.
                services.AddStackExchangeRedisCache(options => options.InstanceName = $"{schema}:dc:");
                services.AddOptions<RedisCacheOptions>().Configure<IConnectionMultiplexer>((options, redis) => options.ConfigurationOptions = SameServer(redis));
                services.AddSingleton<IProfileSource, DistributedCacheProfileSource>();
                break;
            case "fusion":
                // FusionCache's recommended L1+L2 setup: memory, a Redis distributed cache with a serializer, and the
                // Redis backplane that keeps other instances' L1 coherent.
                // https://github.com/ZiggyCreatures/FusionCache/blob/main/docs/Backplane.md
                services.AddFusionCache()
                    .WithOptions(options => options.CacheKeyPrefix = $"{schema}:fc:")
                    .WithDefaultEntryOptions(new FusionCacheEntryOptions { Duration = TimeSpan.FromHours(1) })
                    .WithSerializer(new FusionCacheSystemTextJsonSerializer())
                    .WithDistributedCache(sp => new RedisCache(new RedisCacheOptions { ConfigurationOptions = SameServer(sp.GetRequiredService<IConnectionMultiplexer>()) }))
                    .WithBackplane(sp => new RedisBackplane(new RedisBackplaneOptions { ConfigurationOptions = SameServer(sp.GetRequiredService<IConnectionMultiplexer>()) }));
                services.AddSingleton<IProfileSource, FusionCacheProfileSource>();
                break;
        }
        if (configuration.GetValue<bool>(CountSetting))
        {
            services.AddSingleton<StatusCounters>();
            services.AddTransient<IStartupFilter, StatusCountingStartupFilter>();
        }

        var app = UsersServiceApp.Build(builder, limiter switch
        {
            "redis-rate-limiting" => AddRedisRateLimitingPolicy,
            "none" => (options, _) => options.AddPolicy(UsersServiceApp.RateLimitPolicy, _ => RateLimitPartition.GetNoLimiter("")),
            _ => null,
        });
        if (configuration.GetValue<bool>(CountSetting))
            app.MapGet("/bench/counts", (string? prefix, StatusCounters counters) => TypedResults.Ok(counters.Snapshot(prefix ?? "")));
        return app;
    }

    /// <summary>
    /// RedisRateLimiting's sliding window as its README sets one up, partitioned per client like the service's own
    /// policy (<see cref="RedisRateLimitPartition.GetSlidingWindowRateLimiter{TKey}"/>), with the same limit and window,
    /// on the service's multiplexer. One options instance for every partition, as the factory's documentation allows.
    /// </summary>
    private static void AddRedisRateLimitingPolicy(RateLimiterOptions limiter, UsersServiceOptions service)
    {
        IConnectionMultiplexer? redis = null;
        var options = new RedisSlidingWindowRateLimiterOptions
        {
            ConnectionMultiplexerFactory = () => redis!,
            PermitLimit = service.RateLimit.PermitLimit,
            Window = service.RateLimit.Window,
        };
        Func<string, RedisSlidingWindowRateLimiterOptions> factory = _ => options;
        limiter.AddPolicy(UsersServiceApp.RateLimitPolicy, context =>
        {
            redis ??= context.RequestServices.GetRequiredService<IConnectionMultiplexer>();
            return RedisRateLimitPartition.GetSlidingWindowRateLimiter(UsersServiceApp.ClientPartition(context), factory);
        });
    }

    /// <summary>A configuration for a connection of its own to the server the service's multiplexer uses.</summary>
    private static ConfigurationOptions SameServer(IConnectionMultiplexer redis) => ConfigurationOptions.Parse(redis.Configuration);

    private static string Pick(IConfiguration configuration, string key, string[] allowed)
    {
        var value = (configuration[key] ?? allowed[0]).Trim().ToLowerInvariant();
        return allowed.Contains(value) ? value : throw new InvalidOperationException($"{key} is '{value}'; expected {string.Join(", ", allowed)}");
    }
}

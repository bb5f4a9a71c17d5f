using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Polystore.AspNetCore;
using Polystore.Integration.Cqrs;
using Polystore.OpenTelemetry;
using Polystore.Postgres.Querying;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>Builds the service: <see cref="CreateBuilder"/> gathers the configuration, <see cref="Build"/> wires and maps everything.</summary>
internal static class UsersServiceApp
{
    /// <summary>The rate-limiting policy of the API endpoints.</summary>
    public const string RateLimitPolicy = "api";

    /// <summary>The header whose value picks a client's rate-limit window (else the client's address).</summary>
    public const string ApiKeyHeader = "X-Api-Key";

    /// <summary>
    /// The host builder with the configuration: appsettings.json, then the Polystore YAML folder when
    /// POLYSTORE_CONFIG_DIR is set, then environment variables and the command line (later sources win).
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string[] args)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        if (Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR") is { Length: > 0 } directory)
        {
            builder.Configuration.AddPolystoreYaml(directory);
            // Below the environment variables, so Polystore__Postgres__... still overrides a file.
            var sources = builder.Configuration.Sources;
            var yaml = sources[^1];
            var environment = sources.ToList().FindIndex(s => s is EnvironmentVariablesConfigurationSource { Prefix: null or "" });
            if (environment >= 0)
            {
                sources.RemoveAt(sources.Count - 1);
                sources.Insert(environment, yaml);
            }
        }
        return builder;
    }

    /// <summary>Registers the stores, the users domain, the dispatcher, rate limiting, health checks and OpenAPI, and maps the endpoints.</summary>
    /// <param name="builder">The builder from <see cref="CreateBuilder"/>.</param>
    /// <param name="addRateLimitPolicy">Adds the policy named <see cref="RateLimitPolicy"/> instead of Polystore's sliding
    /// window (for a host that compares limiters); null for Polystore's.</param>
    public static WebApplication Build(WebApplicationBuilder builder, Action<RateLimiterOptions, UsersServiceOptions>? addRateLimitPolicy = null)
    {
        var options = builder.Configuration.GetSection(UsersServiceOptions.Section).Get<UsersServiceOptions>() ?? new UsersServiceOptions();
        options.Validate();
        var schema = options.Schema;
        var services = builder.Services;
        services.AddSingleton(options);

        // Small bodies everywhere but the bulk endpoint, which streams and lifts the limit for itself.
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 1024 * 1024);
        services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.CompleteUnsupportedMediaType);
        services.AddExceptionHandler<ServiceExceptionHandler>();
        services.AddOpenApi();
        AddTelemetry(builder);

        var polystore = services.AddPolystore(builder.Configuration.GetSection("Polystore"))
            .AddConfiguredStores()
            .AddPostgres()
            .AddRedis()
            .AddRedisLocks(new RedisLockOptions { KeyPrefix = $"{schema}:lock", Expiry = options.Orders.LockExpiry });
        services.AddUsersApp(schema, options.PostgresReadModel, new ReadModelCacheOptions { LocalTtl = options.ProfileLocalCacheTtl });
        services.AddSingleton(sp => new OrderStore(sp.GetRequiredService<NpgsqlDataSource>(), schema));
        services.AddSingleton(sp => new UserQueries(options, Signer(options, sp), sp.GetRequiredService<OrderStore>()));
        // A host embedding the service may have registered its own profile source first.
        services.TryAddSingleton<IProfileSource, ProfileReader>();
        // Before the dispatcher: hosted services start in registration order, and it needs the outbox tables.
        services.AddHostedService<SchemaInitializer>();
        services.AddSingleton(sp => sp.GetRequiredService<UsersApp>().Projection());
        polystore.AddOutboxDispatcher<UserProfileProjection>(o =>
        {
            o.Schema = schema;
            o.PollInterval = options.OutboxPollInterval;
        });

        services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            if (addRateLimitPolicy is not null)
            {
                addRateLimitPolicy(limiter, options);
                return;
            }
            limiter.AddPolystoreSlidingWindowPolicy(RateLimitPolicy, ClientPartition, new RedisSlidingWindowOptions
            {
                PermitLimit = options.RateLimit.PermitLimit,
                Window = options.RateLimit.Window,
                KeyPrefix = $"{schema}:rl",
                OnRedisFailure = options.RateLimit.OnRedisFailure,
                RememberDenialsFor = options.RateLimit.RememberDenialsFor,
            });
        });

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRateLimiter();

        app.MapOpenApi();
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponse.WriteAsync });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("polystore"), ResponseWriter = HealthResponse.WriteAsync });

        // Every endpoint may answer 429 (its rate limit), 413 (a body over the limit) and 503 (a store unavailable).
        var api = app.MapGroup("").RequireRateLimiting(RateLimitPolicy)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        UserEndpoints.Map(api);
        OrderEndpoints.Map(api);
        AnalyticsEndpoints.Map(api);
        return app;
    }

    /// <summary>
    /// The rate-limit partition: the API key when one is sent (hashed, so the Redis key stays short whatever is sent),
    /// else the client's address. Behind a proxy, add the forwarded-headers middleware so the address is the client's.
    /// </summary>
    internal static string ClientPartition(HttpContext context)
    {
        if (context.Request.Headers[ApiKeyHeader] is { Count: > 0 } key && !string.IsNullOrEmpty(key.ToString()))
            return "key:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())), 0, 16);
        return "ip:" + (context.Connection.RemoteIpAddress ?? IPAddress.None);
    }

    private static CursorSigner Signer(UsersServiceOptions options, IServiceProvider services)
    {
        if (options.CursorKey is { Length: > 0 } key) return new CursorSigner(Convert.FromBase64String(key));
        services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(UsersServiceApp))
            .LogWarning("UsersService:CursorKey is not set: page cursors are signed with a key of this process and stop working after a restart or on another instance.");
        return CursorSigner.PerProcess;
    }

    /// <summary>
    /// Traces and metrics (Polystore's, ASP.NET Core's own meters, and the drivers' spans), exported as
    /// <c>UsersService:Telemetry:Exporter</c> says: <c>none</c> (the default), <c>console</c>, or <c>otlp</c> (to
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>, by default http://localhost:4317).
    /// </summary>
    private static void AddTelemetry(WebApplicationBuilder builder)
    {
        const string key = "UsersService:Telemetry:Exporter";
        var exporter = (builder.Configuration[key] ?? "none").Trim().ToLowerInvariant();
        if (exporter == "none") return;
        if (exporter is not ("console" or "otlp"))
            throw new InvalidOperationException($"{key} is '{exporter}'; expected none, console or otlp");
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("polystore-users-service"))
            .WithTracing(tracing =>
            {
                tracing.AddSource("Microsoft.AspNetCore").AddPolystoreInstrumentation(includeDrivers: true);
                if (exporter == "console") tracing.AddConsoleExporter(); else tracing.AddOtlpExporter();
            })
            .WithMetrics(metrics =>
            {
                metrics.AddMeter("Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel").AddPolystoreInstrumentation(includeDrivers: true);
                if (exporter == "console") metrics.AddConsoleExporter(); else metrics.AddOtlpExporter();
            });
    }
}

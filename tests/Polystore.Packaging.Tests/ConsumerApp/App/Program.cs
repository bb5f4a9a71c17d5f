// An ASP.NET Core API over Polystore's PostgreSQL, Redis and ASP.NET Core packages (and nothing of MongoDB),
// configured by appsettings.json and, per environment, by environment variables: Polystore__Postgres__Connection__Host,
// __Port, __Database, __User, __Password, Polystore__Redis__Connection__Url, __Password, and App__Schema (the schema
// and Redis key prefix this instance owns).
// `ConsumerApp --self-test` serves on a loopback port, calls every endpoint over HTTP, prints one line per step,
// drops its schema and exits 0 when every answer was the expected one.
// The regions between snippet markers are quoted, verbatim, by the repository's README.
// <snippet:tracing>
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Polystore.OpenTelemetry;
// </snippet:tracing>
// <snippet:rate-limit>
using Polystore.AspNetCore;
using Polystore.Redis.RateLimiting;
// </snippet:rate-limit>
// <snippet:cache-aside>
using Polystore.Redis.Caching;
// </snippet:cache-aside>
// <snippet:keyset-page>
using Polystore.Postgres.Querying;
// <snippet:bulk-upsert>
using Npgsql;
// </snippet:keyset-page>
using Polystore.Postgres.BulkUpsert;
// </snippet:bulk-upsert>
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Console;

// <snippet:registration>
var builder = WebApplication.CreateBuilder(args);
// This instance's table and Redis keys are named after App:Schema, so several instances can share the servers.
var schema = builder.Configuration["App:Schema"] ?? "consumer_app";

builder.Services.AddPolystore(builder.Configuration.GetSection("Polystore"))   // validated when the host starts
    .AddPostgres()                                                             // NpgsqlDataSource, PostgresDataSources
    .AddRedisCache(new() { KeyPrefix = $"{schema}:cache", UseL1 = true });     // IRedisTieredCache, HybridCache; Redis
// </snippet:registration>
if (!Regex.IsMatch(schema, "^[a-z_][a-z0-9_]{0,62}$"))
    throw new InvalidOperationException($"App:Schema '{schema}' is not a lower-case SQL identifier (a-z, 0-9, _)");

// <snippet:rate-limit>
// At most App:RateLimit:PermitLimit requests per window and API key, counted in Redis across every instance.
var rateLimit = builder.Configuration.GetSection("App:RateLimit");
builder.Services.AddRateLimiter(options => options.AddPolystoreSlidingWindowPolicy("per-key",
    http => http.Request.Headers["X-Api-Key"].FirstOrDefault(),
    new RedisSlidingWindowOptions
    {
        PermitLimit = rateLimit.GetValue<int>("PermitLimit"),
        Window = rateLimit.GetValue<TimeSpan>("Window"),
        KeyPrefix = $"{schema}:rl",
    }));
// </snippet:rate-limit>

// <snippet:tracing>
// Polystore's spans and metrics, written to the console when App:Tracing:Console is true (off by default).
if (builder.Configuration.GetValue<bool>("App:Tracing:Console"))
{
    builder.Services.AddOpenTelemetry()
        .WithTracing(tracing => tracing.AddPolystoreInstrumentation(includeDrivers: true).AddConsoleExporter())
        .WithMetrics(metrics => metrics.AddPolystoreInstrumentation().AddConsoleExporter());
}
// </snippet:tracing>

var selfTest = args.Contains("--self-test");
if (selfTest)
{
    // A free loopback port, and stdout kept for the self-test's lines: every log line goes to stderr.
    builder.WebHost.UseUrls("http://127.0.0.1:0");
    builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
}

var app = builder.Build();

// The app's table, created at start (a real application would run its migrations here).
await using (var create = app.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
    $"CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.items (id bigint PRIMARY KEY, name text NOT NULL, score int NOT NULL)"))
    await create.ExecuteNonQueryAsync();

// <snippet:bulk-upsert>
// Built once: table and columns are read from pg_catalog on first use and re-checked with each call's first statement; values always travel as parameters.
var upsert = PostgresBulkUpsert.Into<Item>($"{schema}.items")
    .Column("id", i => i.Id).Column("name", i => i.Name).Column("score", i => i.Score)
    .OnConflict("id")                   // an existing id is updated; a repeated id in one request: the last one wins
    .Build();

app.MapPost("/items:bulk", async (Item[] items, NpgsqlDataSource db, CancellationToken ct) =>
{
    var result = await upsert.ExecuteAsync(db, items, cancellationToken: ct);
    return Results.Ok(new { result.Inserted, result.Updated });
});
// </snippet:bulk-upsert>

// <snippet:keyset-page>
// Signed, opaque cursors; give every instance the same key with .SignCursorsWith(new CursorSigner(key)).
var byId = KeysetQuery.From($"{schema}.items").Select("id", "name", "score").OrderBy("id").MaxPageSize(100).Build();

app.MapGet("/items", async (string? after, int? limit, NpgsqlDataSource db, CancellationToken ct) =>
{
    if (limit is < 1 || limit > byId.MaxPageSize)
        return Results.Problem(title: "Invalid limit", detail: $"limit must be between 1 and {byId.MaxPageSize}", statusCode: 400);
    try
    {
        var page = await byId.PageAsync(db, after, limit ?? 20, r => new Item(r.GetInt64(0), r.GetString(1), r.GetInt32(2)), ct);
        return Results.Ok(new { page.Items, Next = page.NextCursor });
    }
    catch (InvalidCursorException e)    // forged, truncated or from another query: refused before any SQL
    {
        return Results.Problem(title: "Invalid cursor", detail: e.Message, statusCode: 400);
    }
});
// </snippet:keyset-page>

// <snippet:cache-aside>
app.MapGet("/greeting/{name}", async (string name, IRedisTieredCache cache, CancellationToken ct) =>
{
    var factoryRan = false;
    var greeting = await cache.GetOrSetAsync($"greeting:{name}", _ =>
    {
        factoryRan = true;              // however many requests miss at once, this runs once per process
        return Task.FromResult<string?>($"hello, {name}");
    }, new CacheEntryOptions { Ttl = TimeSpan.FromMinutes(10) }, ct);
    return Results.Ok(new { greeting, factoryRan });
});
// </snippet:cache-aside>

// <snippet:rate-limit>
app.UseRateLimiter();
app.MapGet("/quota", () => Results.Ok(new { ok = true })).RequireRateLimiting("per-key");   // 429 + Retry-After past the limit
// </snippet:rate-limit>

// <snippet:health>
// "postgres" (the primary, and each read replica: one down makes it Degraded) and "redis", tagged "polystore".
app.MapHealthChecks("/health");
// </snippet:health>

if (selfTest) return await SelfTest.RunAsync(app, schema);
await app.RunAsync();
return 0;

// <snippet:bulk-upsert>
public sealed record Item(long Id, string Name, int Score);
// </snippet:bulk-upsert>

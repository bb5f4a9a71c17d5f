// A consumer of the Polystore packages: registration from a config folder, then PostgreSQL and Redis through it.
// Usage: ConsumerApp [config-folder]   (default: $POLYSTORE_CONFIG_DIR). Prints one line per step; exit code 0 when all worked.
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polystore.Hosting;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Querying;
using Polystore.Redis.Caching;
using Polystore.Redis.RateLimiting;
using StackExchange.Redis;

var configDirectory = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR");
var version = typeof(PostgresBulkUpsert).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
Console.WriteLine($"polystore: {version}");

var services = new ServiceCollection();
services.AddPolystore(configDirectory);
await using var provider = services.BuildServiceProvider();
var postgres = provider.GetRequiredService<NpgsqlDataSource>();
var redis = provider.GetRequiredService<IConnectionMultiplexer>();

// Everything this run creates is its own: a schema and Redis key prefixes named after it.
var run = Guid.NewGuid().ToString("N")[..12];
var schema = $"consumer_{run}";
await using (var create = postgres.CreateCommand($"CREATE SCHEMA {schema}; CREATE TABLE {schema}.items (id bigint PRIMARY KEY, name text NOT NULL, score int NOT NULL)"))
    await create.ExecuteNonQueryAsync();
try
{
    var upsert = PostgresBulkUpsert.Into<Item>($"{schema}.items")
        .Column("id", i => i.Id).Column("name", i => i.Name).Column("score", i => i.Score)
        .OnConflict("id")
        .Build();
    var first = await upsert.ExecuteAsync(postgres, Enumerable.Range(1, 100).Select(i => new Item(i, $"item {i}", i % 7)));
    var second = await upsert.ExecuteAsync(postgres, Enumerable.Range(91, 20).Select(i => new Item(i, $"item {i} v2", 1)));
    Console.WriteLine($"bulk upsert: inserted {first.Inserted}; then inserted {second.Inserted}, updated {second.Updated}");

    var query = KeysetQuery.From($"{schema}.items").Select("id", "name").OrderBy("id").Build();
    var ids = new List<long>();
    var pages = 0;
    string? cursor = null;
    do
    {
        var page = await query.PageAsync(postgres, cursor, pageSize: 40, r => r.GetInt64(0));
        ids.AddRange(page.Items);
        cursor = page.NextCursor;
        pages++;
    }
    while (cursor is not null);
    var inOrder = ids.SequenceEqual(Enumerable.Range(1, 110).Select(i => (long)i));
    Console.WriteLine($"keyset: {ids.Count} rows in {pages} pages, {(inOrder ? "in order" : "OUT OF ORDER")}");
}
finally
{
    await using var drop = postgres.CreateCommand($"DROP SCHEMA {schema} CASCADE");
    await drop.ExecuteNonQueryAsync();
}

await using (var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = $"consumer:{run}:cache" }))
{
    var factoryCalls = 0;
    Task<string?> Load(string value) { factoryCalls++; return Task.FromResult<string?>(value); }
    await cache.GetOrSetAsync("greeting", _ => Load("hello"));
    var cached = await cache.GetOrSetAsync("greeting", _ => Load("not from the cache"));
    Console.WriteLine($"cache: '{cached}' after {factoryCalls} factory call(s)");
    await cache.RemoveAsync("greeting");
}

var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
    { PermitLimit = 2, Window = TimeSpan.FromMinutes(1), KeyPrefix = $"consumer:{run}:rl" });
var decisions = new List<string>();
for (var i = 0; i < 3; i++)
{
    var decision = await limiter.TryAcquireAsync("client");
    decisions.Add(decision.Allowed ? "allowed" : "denied");
}
Console.WriteLine($"limiter: {string.Join(", ", decisions)}");
Console.WriteLine("done");

internal sealed record Item(long Id, string Name, int Score);

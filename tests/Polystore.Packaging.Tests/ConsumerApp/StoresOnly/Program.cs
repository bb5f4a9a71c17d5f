// An application with PostgreSQL and Redis only, registered through Polystore's builder (whose extension methods
// live in Microsoft.Extensions.DependencyInjection: no Polystore using line is needed for them).
// Usage: StoresOnlyApp [config-folder]   (default: $POLYSTORE_CONFIG_DIR).
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using StackExchange.Redis;

var configDirectory = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR")
    ?? throw new InvalidOperationException("pass the config folder or set POLYSTORE_CONFIG_DIR");

var services = new ServiceCollection();
services.AddPolystore(configDirectory).AddPostgres().AddRedis();
await using var provider = services.BuildServiceProvider();

await using (var select = provider.GetRequiredService<NpgsqlDataSource>().CreateCommand("SELECT 41 + 1"))
    Console.WriteLine($"postgres: {await select.ExecuteScalarAsync()}");
await provider.GetRequiredService<IConnectionMultiplexer>().GetDatabase().PingAsync();
Console.WriteLine("redis: ping answered");

var loaded = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).Where(n => n?.StartsWith("MongoDB", StringComparison.Ordinal) == true).ToList();
Console.WriteLine($"mongodb assemblies loaded: {loaded.Count}");

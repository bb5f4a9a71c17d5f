using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Samples.Users;
using Polystore.Samples.UsersService;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.UsersService.Tests;

/// <summary>
/// The service on real Kestrel on a loopback port, over the private servers, in a schema (and Redis key prefix) of
/// its own; disposing it stops it and drops the schema and its keys.
/// </summary>
public sealed class ServiceApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ServiceApp(WebApplication app, string schema, Uri address)
    {
        _app = app;
        Schema = schema;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
    }

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public string Schema { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => _app.Services;

    public Uri Address => Client.BaseAddress!;

    public UsersApp Users => Services.GetRequiredService<UsersApp>();

    /// <summary>
    /// Starts an instance; <paramref name="settings"/> override the configuration (keys as in appsettings.json), and
    /// <paramref name="build"/> builds the app in place of <see cref="UsersServiceApp.Build"/> (a host embedding the service).
    /// </summary>
    public static async Task<ServiceApp> StartAsync(string name, IReadOnlyDictionary<string, string?>? settings = null, Func<WebApplicationBuilder, WebApplication>? build = null)
    {
        var schema = TestServers.UniqueName(name);
        var builder = UsersServiceApp.CreateBuilder([]);
        if (Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR") is not { Length: > 0 })
            builder.Configuration.AddPolystoreYaml(TestServers.ConfigDirectory);
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["UsersService:Schema"] = schema,
            ["UsersService:CursorKey"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"a test key of 32 bytes or more for {schema}")),
            ["UsersService:ReadFromReplicas"] = "false",
            ["UsersService:OutboxPollInterval"] = "00:00:00.100",
            ["UsersService:RateLimit:PermitLimit"] = "1000000",
            ["UsersService:Orders:LockWait"] = "00:01:00",
            // Several instances run at once against one server.
            ["Polystore:Postgres:pool:max_size"] = "8",
            ["Polystore:Postgres:pool:max_overflow"] = "0",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) values[key] = value;
        builder.Configuration.AddInMemoryCollection(values);
        builder.Logging.ClearProviders();
        var app = build is null ? UsersServiceApp.Build(builder) : build(builder);
        await app.StartAsync(Ct);
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ServiceApp(app, schema, new Uri(address));
    }

    /// <summary>Runs SQL on the primary in this instance's schema and returns the first column of the first row.</summary>
    public async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var connection = await Users.Sources.Primary.OpenConnectionAsync(Ct);
        await using var command = new NpgsqlCommand(sql.Replace("{schema}", $"\"{Schema}\"", StringComparison.Ordinal), connection);
        foreach (var p in parameters) command.Parameters.Add(new NpgsqlParameter { Value = p });
        return (T)Convert.ChangeType((await command.ExecuteScalarAsync(Ct))!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    public Task<HttpResponseMessage> PostJsonAsync(string path, string json, string mediaType = "application/json") =>
        Client.PostAsync(path, new StringContent(json, Encoding.UTF8, mediaType), Ct);

    /// <summary>Creates a user and returns its id.</summary>
    public async Task<long> CreateUserAsync(string email, string name = "Ann", string region = "eu")
    {
        using var response = await PostJsonAsync("/users", JsonSerializer.Serialize(new { email, name, region }));
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (await ReadAsync(response)).GetProperty("id").GetInt64();
    }

    public static async Task<JsonElement> ReadAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone();

    /// <summary>Asserts a ProblemDetails body with <paramref name="status"/> and returns it.</summary>
    public static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, int status)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await ReadAsync(response);
        Assert.Equal(status, problem.GetProperty("status").GetInt32());
        Assert.False(problem.TryGetProperty("exception", out _));
        return problem;
    }

    /// <summary>Asserts a validation problem (400) whose errors name <paramref name="field"/>; returns that field's messages.</summary>
    public static async Task<string> AssertFieldErrorAsync(HttpResponseMessage response, string field)
    {
        var problem = await AssertProblemAsync(response, 400);
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty(field, out var messages), $"no error for '{field}' in {errors}");
        return string.Join(" ", messages.EnumerateArray().Select(m => m.GetString()));
    }

    /// <summary>Repeats <paramref name="probe"/> until it returns true, a bounded number of times (a hang guard, not a timing assertion).</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> probe, string what, int attempts = 1200)
    {
        for (var i = 0; i < attempts; i++)
        {
            if (await probe()) return;
            await Task.Delay(50, Ct);
        }
        Assert.Fail($"never happened: {what}");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        var sources = Users.Sources;
        var redis = Services.GetRequiredService<IConnectionMultiplexer>();
        await _app.StopAsync(CancellationToken.None);
        try
        {
            await using (var connection = await sources.Primary.OpenConnectionAsync(CancellationToken.None))
            await using (var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{Schema}\" CASCADE", connection))
                await drop.ExecuteNonQueryAsync(CancellationToken.None);
            if (redis.IsConnected)
            {
                foreach (var server in redis.GetServers().Where(s => s.IsConnected && !s.IsReplica))
                    await foreach (var key in server.KeysAsync(pattern: $"*{Schema}*"))
                        await redis.GetDatabase().KeyDeleteAsync(key);
            }
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}

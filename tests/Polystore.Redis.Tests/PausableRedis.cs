using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// A Redis server of one test's own that can be paused for writes (scripts included) with <c>CLIENT PAUSE</c>:
/// calls are accepted and wait unanswered until <see cref="ResumeAsync"/>. Never the shared server, which other
/// tests use in parallel.
/// </summary>
internal sealed class PausableRedis : IAsyncDisposable
{
    private readonly ThrowawayRedis _server;
    private ConnectionMultiplexer? _admin;
    private ConnectionMultiplexer? _client;

    private PausableRedis(double timeoutSeconds) => _server = new ThrowawayRedis(timeoutSeconds: timeoutSeconds);

    /// <summary>The application's connection (command timeout <c>timeoutSeconds</c>).</summary>
    public ConnectionMultiplexer Client => _client!;

    /// <summary>An admin connection that is never paused.</summary>
    public ConnectionMultiplexer Admin => _admin!;

    /// <summary>Starts a server whose client connection gives up on a command after <paramref name="timeoutSeconds"/>.</summary>
    public static async Task<PausableRedis> StartAsync(double timeoutSeconds = 60)
    {
        var redis = new PausableRedis(timeoutSeconds);
        await redis._server.StartAsync(TestContext.Current.CancellationToken);
        redis._admin = await redis._server.ConnectAsync();
        redis._client = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(redis._server.Settings));
        return redis;
    }

    /// <summary>Pauses every client's writes (and scripts) for up to a minute.</summary>
    public Task PauseAsync() => Admin.GetServers().Single().ExecuteAsync("CLIENT", "PAUSE", "60000", "WRITE");

    public Task ResumeAsync() => Admin.GetServers().Single().ExecuteAsync("CLIENT", "UNPAUSE");

    public async ValueTask DisposeAsync()
    {
        if (_admin is not null)
        {
            await ResumeAsync();
            await _admin.DisposeAsync();
        }
        if (_client is not null) await _client.DisposeAsync();
        await _server.DisposeAsync();
    }
}

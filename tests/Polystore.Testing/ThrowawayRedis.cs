using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Polystore.Core.Configuration;
using StackExchange.Redis;
using Xunit;

namespace Polystore.Testing;

/// <summary>
/// A redis-server of one test's own on a free port, in the foreground so the test owns the process:
/// it may get a tiny maxmemory, a renamed CONFIG, or be killed and restarted without disturbing the
/// shared server that other tests use in parallel.
/// </summary>
public sealed class ThrowawayRedis : IAsyncDisposable, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("polystore-redis-").FullName;
    private readonly string[] _extraArgs;
    private readonly double _timeoutSeconds;
    private Process? _process;

    /// <summary>Prepares a server (not started yet).</summary>
    /// <param name="password">requirepass, or null for none.</param>
    /// <param name="timeoutSeconds">Connect and command timeouts of <see cref="Settings"/>.</param>
    /// <param name="extraArgs">More redis-server arguments.</param>
    public ThrowawayRedis(string? password = null, double timeoutSeconds = 5, params string[] extraArgs)
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        Port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Password = password;
        _timeoutSeconds = timeoutSeconds;
        _extraArgs = extraArgs;
    }

    /// <summary>Creates and starts a server without a password.</summary>
    public static async Task<ThrowawayRedis> LaunchAsync(params string[] extraArgs)
    {
        var redis = new ThrowawayRedis(null, 5, extraArgs);
        await redis.StartAsync(TestContext.Current.CancellationToken);
        return redis;
    }

    /// <summary>
    /// The redis.conf the server starts from (an empty one written on start), as a packaged server does, so CONFIG
    /// REWRITE has a file to write; null (the default) starts it from its command line alone.
    /// </summary>
    public string? ConfigFile => WithConfigFile ? Path.Combine(_dir, "redis.conf") : null;

    /// <summary>Start from a config file of its own (see <see cref="ConfigFile"/>).</summary>
    public bool WithConfigFile { get; init; }

    /// <summary>The loopback port.</summary>
    public int Port { get; }

    /// <summary>The requirepass, if any.</summary>
    public string? Password { get; }

    /// <summary>redis.yaml settings pointing at this server.</summary>
    public RedisSettings Settings => new()
    {
        Connection = new() { Url = $"redis://127.0.0.1:{Port}", Password = Password },
        Pool = new() { ConnectionTimeout = _timeoutSeconds, SocketTimeout = _timeoutSeconds },
    };

    /// <summary>Starts (or restarts) the server and waits until it listens.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _dir };
        var args = new List<string>();
        if (ConfigFile is { } file)
        {
            if (!File.Exists(file)) await File.WriteAllTextAsync(file, "", ct);
            args.Add(file); // redis-server reads a config file only as its first argument
        }
        args.AddRange(["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _dir]);
        if (Password is not null) args.AddRange(["--requirepass", Password]);
        args.AddRange(_extraArgs);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        for (var i = 0; i < 200; i++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port, ct);
                return;
            }
            catch (SocketException)
            {
                if (_process.HasExited) throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}");
                await Task.Delay(50, ct);
            }
        }
        throw new InvalidOperationException($"redis-server did not listen on {Port}");
    }

    /// <summary>An admin connection (CONFIG, INFO, DEBUG allowed).</summary>
    public Task<ConnectionMultiplexer> ConnectAsync() =>
        ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions { EndPoints = { { "127.0.0.1", Port } }, AllowAdmin = true, Password = Password });

    /// <summary>Kills the server the hard way (no shutdown handshake, no data saved).</summary>
    public async Task KillAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited) _process.Kill();
        await _process.WaitForExitAsync(CancellationToken.None);
        _process.Dispose();
        _process = null;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <inheritdoc />
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}

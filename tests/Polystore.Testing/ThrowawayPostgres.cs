using System.Diagnostics;
using Polystore.Core.Configuration;

namespace Polystore.Testing;

/// <summary>
/// A private PostgreSQL server for one test that must stop or restart it, so the shared server of
/// the other (parallel) tests is never disturbed. Uses the binaries <c>./run up</c> found (PGBIN).
/// </summary>
public sealed class ThrowawayPostgres : IAsyncDisposable
{
    private readonly string _root;
    private readonly string _data;
    private readonly string _bin;

    private ThrowawayPostgres(string root, string bin, int port, string password)
    {
        _root = root;
        _data = Path.Combine(root, "data");
        _bin = bin;
        Port = port;
        Password = password;
    }

    /// <summary>The loopback port.</summary>
    public int Port { get; }

    /// <summary>The postgres role's password.</summary>
    public string Password { get; }

    /// <summary>Settings pointing at this server (database postgres, user postgres).</summary>
    public PostgresSettings Settings => new()
    {
        Connection = new() { Host = "127.0.0.1", Port = Port, Database = "postgres", User = "postgres", Password = Password, Sslmode = PostgresSslMode.Disable },
        Pool = new() { MaxSize = 40, MaxOverflow = 0, PoolTimeout = 5 },
    };

    /// <summary>
    /// Creates and starts the server; <paramref name="settings"/> are extra postgresql.conf lines, and
    /// <paramref name="dataFiles"/> (name to contents) are written into the data folder first, readable by the server
    /// only (a TLS key, or a pg_hba.conf that replaces initdb's).
    /// </summary>
    public static async Task<ThrowawayPostgres> StartAsync(string settings = "", IReadOnlyDictionary<string, string>? dataFiles = null)
    {
        var bin = TestServers.Get("PGBIN") ?? throw new InvalidOperationException("PGBIN unknown: run ./run up");
        var root = Directory.CreateTempSubdirectory("polystore-pg-").FullName;
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101);
        var password = $"pw{Guid.NewGuid():N}";
        await File.WriteAllTextAsync(Path.Combine(root, "pwfile"), password);
        var server = new ThrowawayPostgres(root, bin, LoopbackPort.Free(), password);
        if (Environment.UserName == "root") await RunAsync("chown", "-R", "postgres:", root);
        await server.AsPostgresAsync(Path.Combine(bin, "initdb"), "-D", server._data, "-U", "postgres", $"--pwfile={Path.Combine(root, "pwfile")}", "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8");
        await File.AppendAllTextAsync(Path.Combine(server._data, "postgresql.conf"),
            $"port = {server.Port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\nfsync = off\n{settings}\n");
        foreach (var (name, contents) in dataFiles ?? new Dictionary<string, string>())
        {
            var file = Path.Combine(server._data, name);
            await File.WriteAllTextAsync(file, contents);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            if (Environment.UserName == "root") await RunAsync("chown", "postgres:", file);
        }
        await server.StartServerAsync();
        return server;
    }

    /// <summary>Starts the (stopped) server.</summary>
    public Task StartServerAsync() => AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", _data, "-l", Path.Combine(_root, "log"), "-w", "-t", "60", "start");

    /// <summary>Stops the server, disconnecting every client (fast shutdown).</summary>
    public Task StopServerAsync() => AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", _data, "-m", "fast", "-w", "-t", "60", "stop");

    /// <summary>Kills the server (immediate shutdown: no checkpoint, clients cut off at once); the next start runs crash recovery.</summary>
    public Task CrashAsync() => AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", _data, "-m", "immediate", "-w", "-t", "60", "stop");

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try { await AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", _data, "-m", "immediate", "-w", "stop"); } catch (InvalidOperationException) { }
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private Task AsPostgresAsync(string program, params string[] args) =>
        Environment.UserName == "root" ? RunAsync("runuser", ["-u", "postgres", "--", program, .. args]) : RunAsync(program, args);

    private static async Task RunAsync(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}{await stdout}");
    }
}

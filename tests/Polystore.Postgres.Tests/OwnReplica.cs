using System.Diagnostics;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// A throwaway streaming replica of our own (pg_basebackup to a free port), so stopping it never
/// disturbs the shared replica that other tests and test projects use at the same time.
/// </summary>
public sealed class OwnReplica : IAsyncLifetime
{
    private readonly string _pgbin = TestServers.Get("PGBIN") ?? throw new InvalidOperationException("PGBIN missing from servers.env");
    private readonly string _dir = Path.Combine(TestServers.Get("TMPROOT") ?? Path.GetTempPath(), TestServers.UniqueName("pg-replica-test"));

    public int Port { get; } = LoopbackPort.Free();

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (IsRoot) await RunAsync("chown", "postgres:", _dir);
        var c = TestServers.Postgres.Connection;
        await RunAsPostgresAsync(Path.Combine(_pgbin, "pg_basebackup"), "-h", c.Host, "-p", c.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", c.User, "-D", _dir, "-R", "-X", "stream", "-c", "fast");
        await StartAsync();
    }

    public Task StartAsync() => RunAsPostgresAsync(Path.Combine(_pgbin, "pg_ctl"), "-D", _dir, "-l", Path.Combine(_dir, "server.log"), "-o", $"-p {Port} -c unix_socket_directories=", "-w", "-t", "60", "start");

    public Task StopAsync() => RunAsPostgresAsync(Path.Combine(_pgbin, "pg_ctl"), "-D", _dir, "-m", "fast", "-w", "stop");

    public async ValueTask DisposeAsync()
    {
        try { await StopAsync(); } catch (InvalidOperationException) { /* already stopped */ }
        Directory.Delete(_dir, recursive: true);
    }

    private static bool IsRoot => Environment.UserName == "root";

    private Task RunAsPostgresAsync(string file, params string[] args) => IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", file, .. args]) : RunAsync(file, args);

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        // The password goes through the environment, never the command line.
        start.Environment["PGPASSWORD"] = TestServers.Postgres.Connection.Password;
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}");
    }
}

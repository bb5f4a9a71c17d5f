using System.Net;
using System.Net.Sockets;

namespace Polystore.Postgres.Tests;

/// <summary>
/// A loopback TCP proxy in front of a PostgreSQL server that loses the answer to one COMMIT: the
/// <see cref="CutAtCommit"/>-th COMMIT through it reaches the server, and when the server answers, that client's
/// connection is cut instead, so the transaction commits but the client never hears so. With
/// <see cref="RefuseAfterCut"/> it then refuses new connections, like a server that went away.
/// Use it with sslmode disable (the proxy reads the protocol).
/// </summary>
public sealed class CommitCuttingProxy : IAsyncDisposable
{
    // Npgsql sends COMMIT as a simple Query message: 'Q', length 11, "COMMIT\0".
    private static readonly byte[] CommitMessage = [(byte)'Q', 0, 0, 0, 11, .. "COMMIT"u8, 0];

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _serverHost;
    private readonly int _serverPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _cut = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Task> _connections = [];
    private int _commits;
    private Task? _accepting;

    public CommitCuttingProxy(string serverHost, int serverPort)
    {
        _serverHost = serverHost;
        _serverPort = serverPort;
    }

    /// <summary>Which COMMIT (1-based, over every connection) loses its answer.</summary>
    public int CutAtCommit { get; init; } = 1;

    /// <summary>After the cut, refuse every new connection.</summary>
    public bool RefuseAfterCut { get; init; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Completes once a COMMIT's answer was dropped.</summary>
    public Task Cut => _cut.Task;

    public CommitCuttingProxy Start()
    {
        _listener.Start();
        _accepting = AcceptAsync();
        return this;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            if (RefuseAfterCut && _cut.Task.IsCompleted)
            {
                client.Client.LingerState = new LingerOption(true, 0);
                client.Dispose();
                continue;
            }
            lock (_connections) _connections.Add(RelayAsync(client));
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using var _ = client;
        using var server = new TcpClient();
        try
        {
            await server.ConnectAsync(_serverHost, _serverPort, _stop.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException) { return; }
        var cutNext = new Flag();
        using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var up = PumpAsync(client.GetStream(), server.GetStream(), fromClient: true, cutNext, done);
        var down = PumpAsync(server.GetStream(), client.GetStream(), fromClient: false, cutNext, done);
        await Task.WhenAny(up, down);
        await done.CancelAsync();
        client.Client.LingerState = new LingerOption(true, 0);
        client.Close();
        server.Close();
        await Task.WhenAll(up, down);
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool fromClient, Flag cutNext, CancellationTokenSource done)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer, done.Token);
                if (n == 0) return;
                if (fromClient)
                {
                    // Armed before the COMMIT goes on, so its answer is the next thing the server sends.
                    if (buffer.AsSpan(0, n).IndexOf(CommitMessage) >= 0 && Interlocked.Increment(ref _commits) == CutAtCommit) cutNext.Set();
                }
                else if (cutNext.IsSet)
                {
                    _cut.TrySetResult();
                    return;
                }
                await to.WriteAsync(buffer.AsMemory(0, n), done.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        if (_accepting is not null) await _accepting;
        Task[] open;
        lock (_connections) open = [.. _connections];
        await Task.WhenAll(open);
        _stop.Dispose();
    }

    private sealed class Flag
    {
        private volatile bool _set;

        public bool IsSet => _set;

        public void Set() => _set = true;
    }
}

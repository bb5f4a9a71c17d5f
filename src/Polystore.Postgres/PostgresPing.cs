using System.Diagnostics;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore.Postgres;

/// <summary>Connects to the configured PostgreSQL servers and reports version and round-trip time.</summary>
public static class PostgresPing
{
    /// <summary>Pings the primary and each replica; never throws for an unreachable server.</summary>
    public static async Task<IReadOnlyList<StorePing>> PingAsync(PostgresSettings settings, CancellationToken cancellationToken = default)
    {
        var targets = new List<(string Role, string Host, int Port)> { ("primary", settings.Connection.Host, settings.Connection.Port) };
        targets.AddRange(settings.Replication.ReadReplicas.Select((r, i) => ($"replica {i + 1}", r.Host, r.Port)));
        var tasks = targets.Select(t => PingOneAsync(settings, t.Role, t.Host, t.Port, cancellationToken));
        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private static async Task<StorePing> PingOneAsync(PostgresSettings settings, string role, string host, int port, CancellationToken cancellationToken)
    {
        var endpoint = $"{host}:{port}";
        var builder = PostgresDriverSettings.Build(settings);
        builder.Host = host;
        builder.Port = port;
        builder.Pooling = false;
        builder.LoadBalanceHosts = false;
        builder.Timeout = Math.Min(builder.Timeout, 5);
        try
        {
            var connection = new NpgsqlConnection(builder.ConnectionString);
            await using (connection.ConfigureAwait(false))
            {
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
                await using (command.ConfigureAwait(false))
                {
                    // The first command pays one-time setup; time the second, a plain round trip.
                    await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                    var watch = Stopwatch.StartNew();
                    var inRecovery = (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                    watch.Stop();
                    var details = $"{role}, {(inRecovery ? "standby" : "read-write")}, database {settings.Connection.Database}";
                    return new StorePing(StoreNames.Postgres, endpoint, true, connection.PostgreSqlVersion.ToString(), watch.Elapsed, null, details);
                }
            }
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            return new StorePing(StoreNames.Postgres, endpoint, false, null, null, Redactor.Redact(e.Message, [settings.Connection.Password]), role);
        }
    }
}

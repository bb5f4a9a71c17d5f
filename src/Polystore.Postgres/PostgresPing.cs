using System.Diagnostics;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore.Postgres;

/// <summary>One round trip to the primary and to each configured replica, over the application's own data sources.</summary>
public static class PostgresPing
{
    /// <summary>
    /// Pings the primary (through <see cref="PostgresDataSources.Primary"/>, the application's pool) and each
    /// replica (through a one-connection pool kept for the purpose); never throws for an unreachable server.
    /// The primary is always the first entry.
    /// </summary>
    public static async Task<IReadOnlyList<StorePing>> PingAsync(PostgresDataSources sources, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sources);
        var settings = sources.Settings;
        var tasks = new List<Task<StorePing>>
        {
            PingOneAsync(sources.Primary, settings, "primary",
                settings.Connection.Hosts.Count > 0 ? string.Join(',', settings.Connection.Hosts) : $"{settings.Connection.Host}:{settings.Connection.Port}", PrimaryEndpoints(settings), cancellationToken),
        };
        for (var i = 0; i < settings.Replication.ReadReplicas.Count; i++)
        {
            var replica = settings.Replication.ReadReplicas[i];
            tasks.Add(PingOneAsync(sources.ReplicaProbes[i], settings, $"replica {i + 1}", $"{replica.Host}:{replica.Port}", [(replica.Host, replica.Port)], cancellationToken));
        }
        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    // connection.hosts (each entry, in its order), else connection.host and port.
    internal static List<(string Host, int Port)> PrimaryEndpoints(PostgresSettings settings)
    {
        var c = settings.Connection;
        return c.Hosts.Count > 0 ? [.. c.Hosts.Select(h => PostgresHostEntry.Parse(h, c.Port))] : [(c.Host, c.Port)];
    }

    // endpoint: as the result shows it; endpoints: the servers behind it, for PostgresTlsDiagnosis.
    private static async Task<StorePing> PingOneAsync(NpgsqlDataSource source, PostgresSettings settings, string role, string endpoint,
        List<(string Host, int Port)> endpoints, CancellationToken cancellationToken)
    {
        try
        {
            var connection = await source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
                await using (command.ConfigureAwait(false))
                {
                    // The first command on a new physical connection pays one-time setup; time the second, a plain round trip.
                    await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                    var watch = Stopwatch.StartNew();
                    var inRecovery = (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                    watch.Stop();
                    var details = $"{role}, {(inRecovery ? "standby" : "read-write")}, database {settings.Connection.Database}";
                    return new StorePing(StoreNames.Postgres, endpoint, true, connection.PostgreSqlVersion.ToString(), watch.Elapsed, null, details);
                }
            }
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException
                                   || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            var error = await PostgresTlsDiagnosis.ExplainAsync(PostgresFailure.Describe(e), settings, endpoints, cancellationToken).ConfigureAwait(false);
            return new StorePing(StoreNames.Postgres, endpoint, false, null, null, Redactor.Redact(error, [settings.Connection.Password]), role);
        }
    }
}

using Npgsql;

namespace Polystore.Postgres.Tests;

/// <summary>
/// Opening a connection with a deliberately short timeout on a loaded machine. A new physical connection (and a data
/// source's first one, which reads the server's types) can take longer than the timeout. That is not what the tests
/// using it are about, so opening may take a few attempts.
/// </summary>
internal static class SlowConnect
{
    /// <summary>Opens a connection of <paramref name="sources"/>, trying again (up to 10 attempts) while opening times out.</summary>
    public static async Task<NpgsqlConnection> OpenAsync(PostgresDataSources sources, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await sources.OpenConnectionAsync(ct);
            }
            catch (NpgsqlException e) when (TimedOut(e) && attempt < 10)
            {
            }
        }
    }

    // A multi-host data source (connection.hosts) wraps the host's timeout: "Unable to connect to a suitable host" ->
    // AggregateException -> NpgsqlException -> TimeoutException.
    private static bool TimedOut(Exception e) => e switch
    {
        TimeoutException => true,
        AggregateException a => a.InnerExceptions.Any(TimedOut),
        _ => e.InnerException is { } inner && TimedOut(inner),
    };
}

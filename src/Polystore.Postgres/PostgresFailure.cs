namespace Polystore.Postgres;

/// <summary>One line that says why a PostgreSQL connection failed, for ping results, health data and doctor findings.</summary>
internal static class PostgresFailure
{
    // Long enough for a chain of three messages; a server's message is seldom longer than a line.
    private const int MaxLength = 500;

    /// <summary>
    /// The outer message says what failed, the inner ones why: "Failed to connect to 10.0.0.5:5432: Connection refused",
    /// "Exception while performing SSL handshake: The remote certificate was rejected by ...". A multi-host data
    /// source's "Unable to connect to a suitable host" gives way to its hosts' own reasons. First lines only.
    /// </summary>
    public static string Describe(Exception e)
    {
        var text = Chain(e);
        return text.Length <= MaxLength ? text : text[..MaxLength] + "…";
    }

    private static string Chain(Exception e)
    {
        if (e.InnerException is AggregateException hosts)
            return string.Join("; ", hosts.InnerExceptions.Select(Chain).Distinct(StringComparer.Ordinal));
        var message = e.Message.Split('\n', 2)[0].Trim();
        if (e.InnerException is not { } inner) return message;
        var why = Chain(inner);
        if (why.Length == 0 || message.Contains(why, StringComparison.Ordinal)) return message;
        // Npgsql's messages that only point at the inner exception add nothing once it is spelled out.
        if (message.Contains("inner exception", StringComparison.OrdinalIgnoreCase)) return why;
        return $"{message.TrimEnd('.')}: {why}";
    }
}

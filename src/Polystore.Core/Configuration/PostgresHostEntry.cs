using System.Globalization;

namespace Polystore.Core.Configuration;

/// <summary>One entry of <c>connection.hosts</c> in postgresql.yaml: <c>host:port</c>, <c>[address]:port</c> or a bare host.</summary>
public static class PostgresHostEntry
{
    /// <summary>Splits <paramref name="entry"/> into host and port; a bare host takes <paramref name="defaultPort"/>.</summary>
    /// <exception cref="ArgumentException">The entry is not a host with an optional port (see <see cref="Check"/>).</exception>
    public static (string Host, int Port) Parse(string entry, int defaultPort)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (Check(entry) is { } error) throw new ArgumentException($"connection.hosts entry '{entry}' {error}", nameof(entry));
        var (host, port) = Split(entry.Trim());
        return (host, port is null ? defaultPort : int.Parse(port, NumberStyles.None, CultureInfo.InvariantCulture));
    }

    /// <summary>Why <paramref name="entry"/> is not a usable host entry, or null when it is.</summary>
    public static string? Check(string? entry)
    {
        if (string.IsNullOrWhiteSpace(entry)) return "must not be empty";
        var text = entry.Trim();
        // Npgsql reads a comma as the start of another host and a slash as a socket path.
        if (text.IndexOfAny([',', '/', ' ', '@']) >= 0) return $"'{text}' is not one host: give one host:port per entry";
        if (text.StartsWith('[') && !text.Contains(']', StringComparison.Ordinal)) return $"'{text}' opens an IPv6 [address] that does not close";
        var (host, port) = Split(text);
        if (host.Length == 0) return $"'{text}' has no host before the port";
        if (!host.StartsWith('[') && host.Contains(':', StringComparison.Ordinal)) return $"'{text}' is an IPv6 address without brackets: write [address]:port";
        if (port is null) return null;
        return int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is > 0 and <= 65535
            ? null
            : $"'{text}' has port '{port}', which is not a TCP port (1-65535)";
    }

    private static (string Host, string? Port) Split(string text)
    {
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            var rest = text[(close + 1)..];
            return (text[..(close + 1)], rest.StartsWith(':') ? rest[1..] : rest.Length == 0 ? null : rest);
        }
        var colon = text.LastIndexOf(':');
        // Two colons without brackets: an IPv6 address, reported by Check.
        if (colon < 0 || text.IndexOf(':', StringComparison.Ordinal) != colon) return (text, null);
        return (text[..colon], text[(colon + 1)..]);
    }
}

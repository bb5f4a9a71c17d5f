using System.Globalization;

namespace Polystore.Postgres.Querying;

/// <summary>
/// A .NET value as text PostgreSQL reads back as the same value (cast by the server to the column's type), with
/// nothing dropped: the default invariant formats lose a DateTime's fraction, a TimeOnly's seconds, and write a
/// TimeSpan as d.hh:mm:ss, which PostgreSQL reads as another interval.
/// </summary>
internal static class InvariantText
{
    public static string Of(object value) => value switch
    {
        DateTime d => d.ToString("O", CultureInfo.InvariantCulture),
        DateTimeOffset d => d.ToString("O", CultureInfo.InvariantCulture),
        DateOnly d => d.ToString("O", CultureInfo.InvariantCulture),
        TimeOnly t => t.ToString("HH:mm:ss.fffffff", CultureInfo.InvariantCulture),
        // Microseconds, the interval's own unit: exact, and it compares as the same interval.
        TimeSpan t => string.Create(CultureInfo.InvariantCulture, $"{t.Ticks / TimeSpan.TicksPerMicrosecond} microseconds"),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

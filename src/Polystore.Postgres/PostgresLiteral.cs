namespace Polystore.Postgres;

/// <summary>
/// SQL string literals for SQL shown to people (the doctor's remedies). SQL that Polystore runs never
/// embeds a value: values are sent as parameters.
/// </summary>
internal static class PostgresLiteral
{
    /// <summary>A string literal with embedded quotes doubled: <c>it's</c> becomes <c>'it''s'</c>.</summary>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
    }
}

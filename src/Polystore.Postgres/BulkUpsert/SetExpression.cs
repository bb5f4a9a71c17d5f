using System.Globalization;
using System.Text.RegularExpressions;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// An extra assignment made when the row exists already (<c>ON CONFLICT DO UPDATE SET</c>, or MERGE's
/// <c>WHEN MATCHED THEN UPDATE SET</c>), such as <c>updated_at = now()</c>.
/// Only an allow-list of right-hand sides is accepted from text (see <see cref="Parse"/>); anything else
/// must go through <see cref="TrustedSql"/>, which says in code review that the SQL is not user input.
/// </summary>
public sealed partial class SetExpression
{
    // A 63-byte column name, the longest right-hand side and generous spacing fit well within this.
    private const int MaxAssignmentLength = 256;

    private static readonly string[] AllowedFunctions =
        ["now()", "current_timestamp", "clock_timestamp()", "statement_timestamp()", "transaction_timestamp()", "localtimestamp", "current_date", "default"];

    private SetExpression(string column, Kind kind, string? sql, long increment)
    {
        Column = column;
        ExpressionKind = kind;
        Sql = sql;
        IncrementBy = increment;
    }

    private enum Kind { Function, Increment, Trusted }

    private Kind ExpressionKind { get; }
    private string? Sql { get; }
    private long IncrementBy { get; }

    /// <summary>The column assigned.</summary>
    public string Column { get; }

    /// <summary><c>column = now()</c>.</summary>
    public static SetExpression Now(string column) => new(Required(column), Kind.Function, "now()", 0);

    /// <summary><c>column = DEFAULT</c> (the column's default expression).</summary>
    public static SetExpression Default(string column) => new(Required(column), Kind.Function, "DEFAULT", 0);

    /// <summary><c>column = table.column + by</c>, e.g. a version counter.</summary>
    public static SetExpression Increment(string column, long by = 1) => new(Required(column), Kind.Increment, null, by);

    /// <summary>
    /// A raw SQL right-hand side, inserted verbatim. Never pass user input: this is the one place
    /// where text reaches SQL unchecked. The target table is aliased <c>t</c>, the incoming row is <c>EXCLUDED</c>.
    /// </summary>
    public static SetExpression TrustedSql(string column, string sql)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sql);
        return new(Required(column), Kind.Trusted, sql, 0);
    }

    /// <summary>
    /// Parses <c>column = rhs</c> where rhs is one of now(), current_timestamp, clock_timestamp(),
    /// statement_timestamp(), transaction_timestamp(), localtimestamp, current_date, DEFAULT, or
    /// <c>column + N</c>. Anything else is rejected: use <see cref="TrustedSql"/> for it.
    /// </summary>
    public static SetExpression Parse(string assignment)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(assignment);
        if (assignment.Length > MaxAssignmentLength)
            throw new ArgumentException($"SET expression of {assignment.Length:N0} characters: no allow-listed assignment is longer than {MaxAssignmentLength}. Use SetExpression.TrustedSql for other SQL that is not user input.", nameof(assignment));
        var m = AssignmentPattern().Match(assignment.Trim());
        if (!m.Success)
            throw new ArgumentException($"SET expression \"{TableSchema.Printable(assignment)}\" is not of the form 'column = expression'.", nameof(assignment));
        var column = m.Groups["col"].Value;
        var rhs = WhitespacePattern().Replace(m.Groups["rhs"].Value.Trim(), "").ToLowerInvariant();
        if (AllowedFunctions.Contains(rhs)) return new(column, Kind.Function, rhs == "default" ? "DEFAULT" : rhs, 0);
        var inc = IncrementPattern().Match(rhs);
        if (inc.Success && string.Equals(inc.Groups["col"].Value, column, StringComparison.OrdinalIgnoreCase))
            return Increment(column, long.Parse(inc.Groups["n"].Value, CultureInfo.InvariantCulture));
        throw new ArgumentException(
            $"SET expression \"{TableSchema.Printable(assignment)}\": the right-hand side is not in the allow-list ({string.Join(", ", AllowedFunctions)}, {column} + N). " +
            "Use SetExpression.TrustedSql for other SQL that is not user input.", nameof(assignment));
    }

    /// <summary>False for trusted SQL, which may name <c>EXCLUDED</c> (only ON CONFLICT has it), so it keeps the ON CONFLICT statement.</summary>
    internal bool MergeCompatible => ExpressionKind != Kind.Trusted;

    internal string Render(ColumnSchema column) => ExpressionKind switch
    {
        Kind.Increment => $"{PostgresIdentifier.Quote(column.Name)} = t.{PostgresIdentifier.Quote(column.Name)} + {IncrementBy.ToString(CultureInfo.InvariantCulture)}",
        _ => $"{PostgresIdentifier.Quote(column.Name)} = {Sql}",
    };

    /// <inheritdoc />
    public override string ToString() => ExpressionKind == Kind.Increment ? $"{Column} = {Column} + {IncrementBy}" : $"{Column} = {Sql}";

    private static string Required(string column)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        return column;
    }

    // Matched against the trimmed text, so the right-hand side needs no lazy quantifier before trailing spaces
    // (which backtracks quadratically over a long run of them).
    [GeneratedRegex(@"^(?<col>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?<rhs>.+)$", RegexOptions.Singleline)]
    private static partial Regex AssignmentPattern();

    [GeneratedRegex(@"\s+")]
    private static partial Regex WhitespacePattern();

    [GeneratedRegex(@"^(?<col>[a-z_][a-z0-9_]*)\+(?<n>[0-9]{1,18})$")]
    private static partial Regex IncrementPattern();
}

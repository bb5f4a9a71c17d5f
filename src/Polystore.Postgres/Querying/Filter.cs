using Npgsql;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>
/// A WHERE condition: a catalog-checked column, an operator from a fixed set, and a value sent as a
/// parameter (never as SQL text). Conditions are combined with AND.
/// </summary>
public sealed record Filter(string Column, FilterOperator Operator, object? Value = null)
{
    /// <summary>The column compared (checked against the catalog when the query runs).</summary>
    public string Column { get; init => field = CheckColumn(value); } = CheckColumn(Column);

    /// <summary>The comparison.</summary>
    public FilterOperator Operator { get; init => field = CheckOperator(value); } = CheckOperator(Operator);

    /// <summary><c>column = value</c>.</summary>
    public static Filter Equal(string column, object value) => new(column, FilterOperator.Equal, value);

    /// <summary><c>column = ANY(values)</c>.</summary>
    public static Filter In<TValue>(string column, params TValue[] values) => new(column, FilterOperator.In, values);

    internal string Render(TableSchema table, NpgsqlParameterCollection parameters)
    {
        var column = table.Column(Column, "filter column");
        var name = PostgresIdentifier.Quote(column.Name);
        if (Operator is FilterOperator.IsNull or FilterOperator.IsNotNull)
            return $"{name} {(Operator == FilterOperator.IsNull ? "IS NULL" : "IS NOT NULL")}";
        if (Value is null or DBNull) throw new ArgumentException($"filter on \"{column.Name}\": {Operator} needs a value (use IsNull for NULL).");
        var problem = Operator == FilterOperator.In
            ? Value is Array a && a.GetType() != typeof(byte[]) ? TypeCompatibility.Check(a.GetType().GetElementType()!, column, comparison: true) : $"{nameof(FilterOperator.In)} needs an array of values"
            : TypeCompatibility.Check(Value.GetType(), column, comparison: true);
        if (problem is not null) throw new PostgresSchemaException($"filter on {table.DisplayName}.\"{column.Name}\": {problem}.");
        parameters.Add(new NpgsqlParameter { Value = Value });
        // A type from an extension (citext) compares by its own operators only when the value is of that type too:
        // text would turn citext = text into a case-sensitive text comparison.
        var p = TypeCompatibility.ExtensionType(column) is { } cast
            ? $"${parameters.Count}::{cast}{(Operator == FilterOperator.In ? "[]" : "")}"
            : $"${parameters.Count}";
        return Operator switch
        {
            FilterOperator.Equal => $"{name} = {p}",
            FilterOperator.NotEqual => $"{name} <> {p}",
            FilterOperator.Less => $"{name} < {p}",
            FilterOperator.LessOrEqual => $"{name} <= {p}",
            FilterOperator.Greater => $"{name} > {p}",
            FilterOperator.GreaterOrEqual => $"{name} >= {p}",
            FilterOperator.In => $"{name} = ANY({p})",
            _ => throw new ArgumentOutOfRangeException(nameof(Operator), Operator, "unknown filter operator"),
        };
    }

    private static string CheckColumn(string column) =>
        string.IsNullOrWhiteSpace(column) ? throw new ArgumentException("a filter needs a column name.", nameof(Column)) : column;

    private static FilterOperator CheckOperator(FilterOperator op) =>
        Enum.IsDefined(op) ? op : throw new ArgumentOutOfRangeException(nameof(Operator), op, "unknown filter operator.");

    /// <summary>Stable text for the cursor's query fingerprint.</summary>
    internal string Describe() =>
        $"{Column}\u0001{Operator}\u0001{(Value is Array a ? string.Join("\u0002", a.Cast<object?>().Select(Text)) : Text(Value))}";

    // Exact text (a DateTime's fraction included), so two filters that differ only there never share cursors.
    private static string Text(object? value) => value switch
    {
        null => "",
        byte[] bytes => Convert.ToBase64String(bytes),
        _ => InvariantText.Of(value),
    };
}

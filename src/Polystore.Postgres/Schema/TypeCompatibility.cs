namespace Polystore.Postgres.Schema;

/// <summary>
/// Which CLR types may be sent to which PostgreSQL column types. Checked before any row is sent so
/// that "string into an integer column" is a clear error naming the column rather than a COPY failure
/// halfway through a million rows. CLR types not listed here are left to Npgsql to decide.
/// </summary>
internal static class TypeCompatibility
{
    private static readonly Dictionary<Type, string[]> Known = new()
    {
        [typeof(string)] = ["text", "varchar", "bpchar", "name", "citext", "json", "jsonb", "xml"],
        [typeof(char)] = ["text", "varchar", "bpchar", "char"],
        [typeof(bool)] = ["bool"],
        [typeof(short)] = ["int2", "int4", "int8", "numeric"],
        [typeof(int)] = ["int4", "int8", "numeric"],
        [typeof(long)] = ["int8", "numeric"],
        [typeof(float)] = ["float4", "float8"],
        [typeof(double)] = ["float8"],
        [typeof(decimal)] = ["numeric", "money"],
        [typeof(Guid)] = ["uuid"],
        [typeof(DateTime)] = ["timestamp", "timestamptz", "date"],
        [typeof(DateTimeOffset)] = ["timestamptz"],
        [typeof(DateOnly)] = ["date"],
        [typeof(TimeOnly)] = ["time"],
        [typeof(TimeSpan)] = ["interval", "time"],
        [typeof(byte[])] = ["bytea"],
        [typeof(System.Text.Json.JsonDocument)] = ["json", "jsonb"],
        [typeof(System.Text.Json.JsonElement)] = ["json", "jsonb"],
    };

    /// <summary>Null when compatible (or unknown to this table), else the reason.</summary>
    public static string? Check(Type clrType, ColumnSchema column)
    {
        var type = Nullable.GetUnderlyingType(clrType) ?? clrType;
        var pg = column.WriteTypeName;
        if (type.IsArray && type != typeof(byte[]))
        {
            if (!pg.EndsWith("[]", StringComparison.Ordinal)) return $"a {type.Name} array cannot be written to column of type {column.SqlType}";
            var element = type.GetElementType()!;
            return Known.TryGetValue(Nullable.GetUnderlyingType(element) ?? element, out var okElement) && !okElement.Contains(pg[..^2])
                ? $"{type.Name} cannot be written to column of type {column.SqlType}" : null;
        }
        if (!Known.TryGetValue(type, out var ok)) return null;
        return ok.Contains(pg) ? null : $"{type.Name} cannot be written to column of type {column.SqlType} (accepted for {type.Name}: {string.Join(", ", ok)})";
    }
}

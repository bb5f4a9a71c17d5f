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

    // What a number may be compared with (not written into: 1 is an int, and smallint = 1 is fine SQL).
    private static readonly string[] Numeric = ["int2", "int4", "int8", "numeric", "float4", "float8"];

    /// <summary>Null when compatible (or unknown to this table), else the reason.</summary>
    /// <param name="clrType">The value's type.</param>
    /// <param name="column">The column.</param>
    /// <param name="comparison">Compared with the column (a filter) rather than written into it: any number meets any numeric column.</param>
    public static string? Check(Type clrType, ColumnSchema column, bool comparison = false)
    {
        var type = Nullable.GetUnderlyingType(clrType) ?? clrType;
        // Types from extensions are named schema.type (public.citext); the table lists them by their bare name.
        var pg = Bare(column.WriteTypeName);
        if (comparison && type.IsPrimitive && type != typeof(bool) && type != typeof(char) && Numeric.Contains(pg)) return null;
        if (comparison && type == typeof(decimal) && Numeric.Contains(pg)) return null;
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

    /// <summary>The column's type, quoted and schema-qualified, when it comes from an extension (not pg_catalog); else null.</summary>
    public static string? ExtensionType(ColumnSchema column)
    {
        var name = column.WriteTypeName;
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || name.EndsWith("[]", StringComparison.Ordinal)) return null;
        return $"{PostgresIdentifier.Quote(name[..dot])}.{PostgresIdentifier.Quote(name[(dot + 1)..])}";
    }

    private static string Bare(string typeName)
    {
        var dot = typeName.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? typeName : typeName[(dot + 1)..];
    }
}

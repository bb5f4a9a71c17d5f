using System.Text;
using Npgsql;

namespace Polystore.Postgres.Schema;

/// <summary>
/// A table looked up in pg_catalog by exact name. Every identifier Polystore puts in SQL comes from
/// here (the catalog's own spelling) and is quoted, so caller strings never reach the SQL text.
/// </summary>
internal sealed class TableSchema
{
    private readonly Dictionary<string, ColumnSchema> _columns;

    internal TableSchema(string schema, string name, uint oid, List<ColumnSchema> columns, List<short[]> uniqueKeys)
    {
        Schema = schema;
        Name = name;
        Oid = oid;
        Columns = columns;
        UniqueKeys = uniqueKeys;
        _columns = columns.ToDictionary(c => c.Name, StringComparer.Ordinal);
    }

    public string Schema { get; }
    public string Name { get; }
    public uint Oid { get; }
    public IReadOnlyList<ColumnSchema> Columns { get; }

    /// <summary>Column numbers of each non-partial unique index (primary key included).</summary>
    public IReadOnlyList<short[]> UniqueKeys { get; }

    /// <summary>The schema-qualified, quoted name for SQL text.</summary>
    public string QualifiedName => PostgresIdentifier.Qualified(Schema, Name);

    /// <summary>A display name for messages.</summary>
    public string DisplayName => $"{Schema}.{Name}";

    /// <summary>The column, or a clear error naming the table and the columns it has.</summary>
    public ColumnSchema Column(string name, string role)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_columns.TryGetValue(name, out var column)) return column;
        var sample = string.Join(", ", Columns.Take(12).Select(c => c.Name));
        throw new PostgresSchemaException($"{role}: table {DisplayName} has no column \"{Printable(name)}\" (columns: {sample}{(Columns.Count > 12 ? ", ..." : "")}).");
    }

    /// <summary>True when the given columns include every column of some unique index.</summary>
    public bool IsUniqueOver(IEnumerable<ColumnSchema> columns)
    {
        var numbers = columns.Select(c => c.Number).ToHashSet();
        return UniqueKeys.Any(k => k.All(numbers.Contains));
    }

    /// <summary>True when exactly these columns form a unique index (what ON CONFLICT needs).</summary>
    public bool HasUniqueIndexOn(IEnumerable<ColumnSchema> columns)
    {
        var numbers = columns.Select(c => c.Number).ToHashSet();
        return UniqueKeys.Any(k => k.Length == numbers.Count && k.All(numbers.Contains));
    }

    /// <summary>Control characters in a caller's string are shown escaped in messages.</summary>
    internal static string Printable(string value)
    {
        var sb = new StringBuilder(Math.Min(value.Length, 80));
        foreach (var ch in value.Length > 80 ? value[..80] + "..." : value)
            sb.Append(char.IsControl(ch) ? $"\\u{(int)ch:x4}" : ch.ToString());
        return sb.ToString();
    }

    /// <summary>"schema.table" split at its one dot (when it has exactly one and no quotes), else the whole text as the name.</summary>
    public static (string? Schema, string Name) ParseName(string table)
    {
        var dot = table.IndexOf('.', StringComparison.Ordinal);
        return dot > 0 && table.IndexOf('.', dot + 1) < 0 && !table.Contains('"', StringComparison.Ordinal)
            ? (table[..dot], table[(dot + 1)..])
            : (null, table);
    }

    /// <summary>
    /// Refuses, where a caller names a table, a name no PostgreSQL table can have: empty, with a NUL character, or a
    /// part longer than <see cref="PostgresIdentifier.MaxLength"/> bytes (the server truncates such names when it creates them).
    /// </summary>
    public static string CheckName(string table, string parameter)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(table, parameter);
        if (table.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException($"table \"{Printable(table)}\": a PostgreSQL name cannot contain a NUL character.", parameter);
        var (schema, name) = ParseName(table);
        foreach (var part in schema is null ? [name] : new[] { schema, name })
        {
            var bytes = Encoding.UTF8.GetByteCount(part);
            if (bytes > PostgresIdentifier.MaxLength)
                throw new ArgumentException($"table \"{Printable(table)}\": \"{Printable(part)}\" is {bytes} bytes long, and PostgreSQL names are at most {PostgresIdentifier.MaxLength} (longer ones are cut to {PostgresIdentifier.MaxLength} bytes when created: use the name as the catalog stores it).", parameter);
        }
        return table;
    }

    /// <summary>A caller's table name quoted for SQL shown to people, split as <see cref="LoadAsync"/> splits it.</summary>
    public static string QuoteName(string table) => ParseName(table) is ({ } schema, var name) ? PostgresIdentifier.Qualified(schema, name) : PostgresIdentifier.Quote(table);

    /// <summary>
    /// Finds a table by exact name: "table" (first match on the search_path) or "schema.table".
    /// Names are compared as stored in the catalog (unquoted lower case unless created quoted).
    /// </summary>
    public static async Task<TableSchema> LoadAsync(NpgsqlConnection connection, string table, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        var (schema, name) = ParseName(CheckName(table, nameof(table)));

        var found = await Sql.QueryAsync(connection, transaction, $"SELECT c.oid, n.nspname, c.relname {ResolveName}",
            [new NpgsqlParameter<string> { TypedValue = name }, new NpgsqlParameter { Value = (object?)schema ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text }],
            r => (Oid: r.GetFieldValue<uint>(0), Schema: r.GetString(1), Name: r.GetString(2)), cancellationToken).ConfigureAwait(false);
        if (found.Count == 0) throw NotFound(table, schema);
        var (oid, foundSchema, foundName) = found[0];

        var columns = await Sql.QueryAsync(connection, transaction, ColumnsOf("$1"), [OidParameter(oid)], ReadColumn, cancellationToken).ConfigureAwait(false);
        var unique = await Sql.QueryAsync(connection, transaction, UniqueIndexesOf("$1"), [OidParameter(oid)], r => r.GetFieldValue<short[]>(0), cancellationToken).ConfigureAwait(false);
        return new TableSchema(foundSchema, foundName, oid, columns, unique);
    }

    /// <summary>The error for a name that resolves to no table (<paramref name="schema"/> as the caller gave it, or null).</summary>
    internal static PostgresSchemaException NotFound(string table, string? schema) =>
        new($"table \"{Printable(table)}\" was not found in the catalog ({(schema is null ? "searched the search_path" : $"schema \"{Printable(schema)}\"")}); names are matched exactly as stored, usually lower case.");

    /// <summary>
    /// The table a name resolves to on the connection, as <see cref="LoadAsync"/> finds it: the FROM clause onward over
    /// <c>c</c> (pg_class) and <c>n</c> (pg_namespace), one row at most; <c>$1</c> the name, <c>$2</c> the schema or null.
    /// </summary>
    internal const string ResolveName = """
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND (($2::text IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))) OR n.nspname = $2)
        ORDER BY pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)
        LIMIT 1
        """;

    /// <summary>The columns of the table whose oid is <paramref name="oid"/> (an SQL expression), read by <see cref="ReadColumn"/>.</summary>
    /// <remarks>Domains are written as their base type; arrays as element[] (the names Npgsql resolves).</remarks>
    internal static string ColumnsOf(string oid) => $"""
        SELECT a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod),
               CASE WHEN b.typcategory = 'A' THEN be.typname || '[]' ELSE
                    CASE WHEN bn.nspname = 'pg_catalog' THEN b.typname ELSE bn.nspname || '.' || b.typname END END,
               a.attnotnull, a.attgenerated <> '', a.attidentity = 'a', coalesce(co.collisdeterministic, true)
        FROM pg_catalog.pg_attribute a
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace
        LEFT JOIN pg_catalog.pg_type be ON be.oid = b.typelem AND b.typcategory = 'A'
        WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """;

    /// <summary>One row of <see cref="ColumnsOf"/>.</summary>
    internal static ColumnSchema ReadColumn(NpgsqlDataReader r) =>
        new(r.GetString(0), r.GetInt16(1), r.GetString(2), r.GetString(3), r.GetBoolean(4), r.GetBoolean(5), r.GetBoolean(6)) { DeterministicCollation = r.GetBoolean(7) };

    /// <summary>
    /// The unique indexes an ON CONFLICT can use (plain columns, no predicate, valid) of the table whose oid is
    /// <paramref name="oid"/>: one int2[] of column numbers each, its key columns only (INCLUDE columns are not part of
    /// the key: indkey lists them after the first indnkeyatts).
    /// </summary>
    internal static string UniqueIndexesOf(string oid) => $"""
        SELECT (SELECT pg_catalog.array_agg(k ORDER BY o) FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY u(k, o) WHERE o <= i.indnkeyatts)
        FROM pg_catalog.pg_index i
        WHERE i.indrelid = {oid} AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
        """;

    private static NpgsqlParameter<uint> OidParameter(uint oid) => new() { TypedValue = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid };
}

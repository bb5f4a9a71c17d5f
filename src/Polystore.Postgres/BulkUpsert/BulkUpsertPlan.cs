using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>The SQL for one upsert, built only from catalog names (quoted) after every check passed.</summary>
internal sealed class BulkUpsertPlan<T>
{
    public const string OrdinalColumn = "polystore_ordinal";
    private static long _stagingCounter;

    public BulkUpsertPlan(TableSchema table, IReadOnlyList<(UpsertColumn<T> Map, ColumnSchema Column)> columns,
        IReadOnlyList<ColumnSchema> conflict, IReadOnlyList<ColumnSchema> update, IReadOnlyList<(SetExpression Expression, ColumnSchema Column)> set)
    {
        Table = table;
        Columns = columns;
        KeyColumns = columns.Where(c => conflict.Any(k => k.Name == c.Column.Name)).Select(c => c.Map).ToArray();
        var cols = string.Join(", ", columns.Select(c => TableSchema.Quote(c.Column.Name)));
        var keys = string.Join(", ", conflict.Select(c => TableSchema.Quote(c.Name)));
        var assignments = update.Select(c => $"{TableSchema.Quote(c.Name)} = EXCLUDED.{TableSchema.Quote(c.Name)}")
            .Concat(set.Select(s => s.Expression.Render(s.Column))).ToList();
        DoNothing = assignments.Count == 0;
        var action = DoNothing ? "DO NOTHING" : "DO UPDATE SET " + string.Join(", ", assignments);
        Staging = TableSchema.Quote($"polystore_upsert_{Interlocked.Increment(ref _stagingCounter)}");
        CreateStaging = $"CREATE TEMP TABLE {Staging} ON COMMIT DROP AS SELECT 0::int8 AS {OrdinalColumn}, {cols} FROM {table.QualifiedName} WITH NO DATA";
        Copy = $"COPY {Staging} ({OrdinalColumn}, {cols}) FROM STDIN (FORMAT BINARY)";

        string Upsert(string source) =>
            $"WITH u AS (INSERT INTO {table.QualifiedName} AS t ({cols}) SELECT {cols} FROM {source} ON CONFLICT ({keys}) {action} RETURNING (t.xmax = 0) AS inserted) " +
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM u";
        string LastWins(string from) => $"(SELECT DISTINCT ON ({keys}) {cols} FROM {from} ORDER BY {keys}, {OrdinalColumn} DESC) s";

        UpsertFromStaging = Upsert(Staging);
        UpsertFromStagingDeduplicated = Upsert(LastWins(Staging));
        HasDuplicates = $"SELECT EXISTS (SELECT 1 FROM {Staging} GROUP BY {keys} HAVING count(*) > 1)";
        var parameters = string.Join(", ", columns.Select((_, i) => $"${i + 1}"));
        UpsertFromArrays = Upsert(LastWins($"unnest({parameters}) WITH ORDINALITY AS a({cols}, {OrdinalColumn})"));
    }

    public TableSchema Table { get; }
    public IReadOnlyList<(UpsertColumn<T> Map, ColumnSchema Column)> Columns { get; }
    public UpsertColumn<T>[] KeyColumns { get; }
    public bool DoNothing { get; }
    public string Staging { get; }
    public string CreateStaging { get; }
    public string Copy { get; }
    public string UpsertFromStaging { get; }
    public string UpsertFromStagingDeduplicated { get; }
    public string HasDuplicates { get; }
    public string UpsertFromArrays { get; }
}

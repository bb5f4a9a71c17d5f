using Npgsql;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>A row with its place in a ranking.</summary>
/// <typeparam name="T">The mapped row type.</typeparam>
/// <param name="Row">The row.</param>
/// <param name="Rank"><c>RANK()</c>: ties share a rank, and the next rank skips (1, 1, 3).</param>
/// <param name="DenseRank"><c>DENSE_RANK()</c>: ties share a rank, no gaps (1, 1, 2).</param>
/// <param name="PercentRank"><c>PERCENT_RANK()</c>: (rank - 1) / (rows in partition - 1), 0 for the top.</param>
public sealed record Ranked<T>(T Row, long Rank, long DenseRank, double PercentRank);

/// <summary>
/// The seed's <c>RANK() / PERCENT_RANK() OVER (ORDER BY score DESC) … WHERE active</c> query, generalized:
/// <c>Ranking.From("users").Select("id", "name", "score").OrderBy("score", SortDirection.Descending).Where(Filter.Equal("active", true)).Top(10).Build()</c>.
/// </summary>
public static class Ranking
{
    /// <summary>Ranks the rows of <paramref name="table"/>.</summary>
    public static RankingBuilder From(string table)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(table);
        return new RankingBuilder(table);
    }
}

/// <summary>Describes a ranking; names are checked against the catalog when it runs.</summary>
public sealed class RankingBuilder
{
    private readonly string _table;
    private readonly List<string> _select = [];
    private readonly List<string> _partition = [];
    private readonly List<(string Column, SortDirection Direction)> _order = [];
    private readonly List<Filter> _filters = [];
    private int? _top;

    internal RankingBuilder(string table) => _table = table;

    /// <summary>Columns returned, at reader ordinals 0..n-1. Default: every column.</summary>
    public RankingBuilder Select(params string[] columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        _select.AddRange(columns);
        return this;
    }

    /// <summary>Ranks separately within each group of these columns (e.g. region).</summary>
    public RankingBuilder PartitionBy(params string[] columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        _partition.AddRange(columns);
        return this;
    }

    /// <summary>What the rank orders by (first key; add more with further calls).</summary>
    public RankingBuilder OrderBy(string column, SortDirection direction = SortDirection.Descending)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        if (!Enum.IsDefined(direction)) throw new ArgumentOutOfRangeException(nameof(direction));
        _order.Add((column, direction));
        return this;
    }

    /// <summary>Rows ranked (applied before ranking, as the seed's <c>WHERE active = true</c>).</summary>
    public RankingBuilder Where(Filter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        _filters.Add(filter);
        return this;
    }

    /// <summary>Keeps rows with rank at most <paramref name="n"/> (per partition); ties at the edge are all kept.</summary>
    public RankingBuilder Top(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        _top = n;
        return this;
    }

    /// <summary>The reusable ranking.</summary>
    public RankingDefinition Build()
    {
        if (_order.Count == 0) throw new InvalidOperationException($"ranking on {_table}: give the order with OrderBy(...).");
        return new RankingDefinition(_table, [.. _select], [.. _partition], [.. _order], [.. _filters], _top);
    }
}

/// <summary>
/// A ranking query. Results come ordered by partition, then rank. Index that helps: the filter
/// columns, then the partition columns, then the order keys, e.g. <c>CREATE INDEX ON users (region, score DESC) WHERE active</c>.
/// </summary>
public sealed class RankingDefinition
{
    private readonly string _table;
    private readonly string[] _select;
    private readonly string[] _partition;
    private readonly (string Column, SortDirection Direction)[] _order;
    private readonly Filter[] _filters;
    private readonly int? _top;

    internal RankingDefinition(string table, string[] select, string[] partition, (string, SortDirection)[] order, Filter[] filters, int? top) =>
        (_table, _select, _partition, _order, _filters, _top) = (table, select, partition, order, filters, top);

    /// <summary>Runs the ranking (use <c>PostgresDataSources.Reads</c> to send it to a replica).</summary>
    public async Task<IReadOnlyList<Ranked<T>>> ExecuteAsync<T>(NpgsqlDataSource dataSource, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(map);
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var table = await TableSchema.LoadAsync(connection, _table, null, cancellationToken).ConfigureAwait(false);
            var select = _select.Length == 0 ? table.Columns.ToList() : _select.Select(c => table.Column(c, "selected column")).ToList();
            var partition = _partition.Select(c => table.Column(c, "partition column")).ToList();
            var order = _order.Select(o => PostgresIdentifier.Quote(table.Column(o.Column, "rank order column").Name) + (o.Direction == SortDirection.Descending ? " DESC" : " ASC"));
            var command = new NpgsqlCommand { Connection = connection };
            await using (command.ConfigureAwait(false))
            {
                var where = _filters.Select(f => f.Render(table, command.Parameters)).ToList();
                var inner = string.Join(", ", select.Select(c => PostgresIdentifier.Quote(c.Name))
                    .Concat(partition.Select((c, i) => $"{PostgresIdentifier.Quote(c.Name)} AS polystore_p{i}")));
                var window = (partition.Count > 0 ? "PARTITION BY " + string.Join(", ", partition.Select(c => PostgresIdentifier.Quote(c.Name))) + " " : "") + "ORDER BY " + string.Join(", ", order);
                var outerColumns = string.Join(", ", select.Select((_, i) => $"r.c{i}"));
                string topFilter = "";
                if (_top is { } top)
                {
                    command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = top });
                    topFilter = $" WHERE r.polystore_rank <= ${command.Parameters.Count}";
                }
                // Inner columns are renamed c0..cn so user column names can never clash with ours.
                command.CommandText =
                    $"SELECT {outerColumns}, r.polystore_rank, r.polystore_dense_rank, r.polystore_percent_rank FROM (" +
                    $"SELECT {inner}, RANK() OVER w AS polystore_rank, DENSE_RANK() OVER w AS polystore_dense_rank, PERCENT_RANK() OVER w AS polystore_percent_rank, ROW_NUMBER() OVER w AS polystore_row " +
                    $"FROM {table.QualifiedName}{(where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "")} WINDOW w AS ({window})" +
                    $") AS r (" + string.Join(", ", select.Select((_, i) => $"c{i}").Concat(partition.Select((_, i) => $"polystore_p{i}"))) + ", polystore_rank, polystore_dense_rank, polystore_percent_rank, polystore_row)" +
                    $"{topFilter} ORDER BY {string.Concat(partition.Select((_, i) => $"r.polystore_p{i}, "))}r.polystore_row";
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    var rows = new List<Ranked<T>>();
                    var n = select.Count;
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        rows.Add(new Ranked<T>(map(reader), reader.GetInt64(n), reader.GetInt64(n + 1), reader.GetDouble(n + 2)));
                    return rows;
                }
            }
        }
    }
}

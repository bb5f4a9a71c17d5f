using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

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
        ColumnNames.Require(columns);
        _select.AddRange(columns);
        return this;
    }

    /// <summary>Ranks separately within each group of these columns (e.g. region).</summary>
    public RankingBuilder PartitionBy(params string[] columns)
    {
        ColumnNames.Require(columns);
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

    /// <summary>Rows ranked (applied before ranking, e.g. <c>WHERE active = true</c>).</summary>
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

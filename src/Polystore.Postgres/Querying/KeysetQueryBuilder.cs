using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>Describes a keyset query. Every name is checked against the catalog on first use.</summary>
public sealed class KeysetQueryBuilder
{
    private readonly string _table;
    private readonly List<string> _select = [];
    private readonly List<(string Column, SortDirection Direction)> _keys = [];
    private readonly List<Filter> _filters = [];
    private int _maxPageSize = 1000;
    private CursorSigner _signer = CursorSigner.PerProcess;

    internal KeysetQueryBuilder(string table) => _table = table;

    /// <summary>Columns returned, in this order (reader ordinals 0..n-1). Default: every column of the table.</summary>
    public KeysetQueryBuilder Select(params string[] columns)
    {
        ColumnNames.Require(columns);
        _select.AddRange(columns);
        return this;
    }

    /// <summary>The first sort key.</summary>
    public KeysetQueryBuilder OrderBy(string column, SortDirection direction = SortDirection.Ascending)
    {
        if (_keys.Count > 0) throw new InvalidOperationException("OrderBy was already called; add further keys with ThenBy.");
        return ThenBy(column, direction);
    }

    /// <summary>A further sort key. The keys together must be unique (end with the primary key, e.g. id).</summary>
    public KeysetQueryBuilder ThenBy(string column, SortDirection direction = SortDirection.Ascending)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        if (!Enum.IsDefined(direction)) throw new ArgumentOutOfRangeException(nameof(direction));
        _keys.Add((column, direction));
        return this;
    }

    /// <summary>A condition on every page (ANDed with the others).</summary>
    public KeysetQueryBuilder Where(Filter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        _filters.Add(filter);
        return this;
    }

    /// <summary>The largest page a caller may ask for (default 1,000).</summary>
    public KeysetQueryBuilder MaxPageSize(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        _maxPageSize = rows;
        return this;
    }

    /// <summary>Signs cursors with this key (default: <see cref="CursorSigner.PerProcess"/>).</summary>
    public KeysetQueryBuilder SignCursorsWith(CursorSigner signer)
    {
        _signer = signer ?? throw new ArgumentNullException(nameof(signer));
        return this;
    }

    /// <summary>The reusable query.</summary>
    public KeysetQueryDefinition Build()
    {
        if (_keys.Count == 0) throw new InvalidOperationException($"keyset query on {_table}: give the order with OrderBy(...).");
        if (_keys.Select(k => k.Column).Distinct().Count() != _keys.Count) throw new InvalidOperationException($"keyset query on {_table}: a sort key is repeated.");
        return new KeysetQueryDefinition(_table, [.. _select], [.. _keys], [.. _filters], _maxPageSize, _signer);
    }
}

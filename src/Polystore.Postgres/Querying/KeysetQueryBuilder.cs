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
    private int _maxKeyBytes = KeysetQueryDefinition.DefaultMaxKeyBytes;
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

    /// <summary>
    /// The largest page a caller may ask for (default 1,000; at least 1). Memory follows the rows a page returns,
    /// not this bound.
    /// </summary>
    public KeysetQueryBuilder MaxPageSize(int rows)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "MaxPageSize must be at least 1.");
        _maxPageSize = rows;
        return this;
    }

    /// <summary>
    /// The most bytes the sort keys of one row may take as UTF-8 text, all keys together (default 16,384; 1 to 1,048,576).
    /// Every cursor of such a row is accepted back; the longest cursor the query accepts
    /// (<see cref="KeysetQueryDefinition.MaxCursorLength"/>) follows from it, and a row with longer keys fails the page
    /// with an error naming this setting rather than issuing a cursor that could not come back.
    /// </summary>
    public KeysetQueryBuilder MaxKeyBytes(int bytes)
    {
        if (bytes is < 1 or > KeysetQueryDefinition.MaxKeyBytesLimit)
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, $"MaxKeyBytes must be between 1 and {KeysetQueryDefinition.MaxKeyBytesLimit:N0}.");
        _maxKeyBytes = bytes;
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
        return new KeysetQueryDefinition(_table, [.. _select], [.. _keys], [.. _filters], _maxPageSize, _maxKeyBytes, _signer);
    }
}

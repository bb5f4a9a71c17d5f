namespace Polystore.Postgres.Querying;

/// <summary>Comparison of a <see cref="Filter"/>.</summary>
public enum FilterOperator
{
    /// <summary><c>column = value</c>.</summary>
    Equal,
    /// <summary><c>column &lt;&gt; value</c>.</summary>
    NotEqual,
    /// <summary><c>column &lt; value</c>.</summary>
    Less,
    /// <summary><c>column &lt;= value</c>.</summary>
    LessOrEqual,
    /// <summary><c>column &gt; value</c>.</summary>
    Greater,
    /// <summary><c>column &gt;= value</c>.</summary>
    GreaterOrEqual,
    /// <summary><c>column = ANY(values)</c>; the value is an array.</summary>
    In,
    /// <summary><c>column IS NULL</c>.</summary>
    IsNull,
    /// <summary><c>column IS NOT NULL</c>.</summary>
    IsNotNull,
}

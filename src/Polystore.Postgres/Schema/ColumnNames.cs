using System.Runtime.CompilerServices;

namespace Polystore.Postgres.Schema;

/// <summary>Checks lists of column names where a caller gives them, so a null or blank one fails there, not at the first query.</summary>
internal static class ColumnNames
{
    public static string[] Require(string[] columns, [CallerArgumentExpression(nameof(columns))] string? parameter = null)
    {
        ArgumentNullException.ThrowIfNull(columns, parameter);
        for (var i = 0; i < columns.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(columns[i]))
                throw new ArgumentException($"column name at index {i} is {(columns[i] is null ? "null" : "empty")}; name every column.", parameter);
        }
        return columns;
    }
}

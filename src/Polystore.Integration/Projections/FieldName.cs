using System.Text.RegularExpressions;

namespace Polystore.Integration.Projections;

/// <summary>Checks the field names callers pass to read-model queries, before they reach a query.</summary>
internal static partial class FieldName
{
    public static string Check(string field) =>
        Plain().IsMatch(field) ? field : throw new ArgumentException($"'{field}' is not a plain field name (letters, digits and _, starting with a letter or _)", nameof(field));

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    private static partial Regex Plain();
}

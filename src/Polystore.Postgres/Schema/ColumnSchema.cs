namespace Polystore.Postgres.Schema;

/// <summary>One column as the catalog describes it.</summary>
internal sealed record ColumnSchema(string Name, short Number, string SqlType, string WriteTypeName, bool NotNull, bool Generated, bool IdentityAlways)
{
    /// <summary>False when the column's collation is nondeterministic (values with other bytes can compare equal).</summary>
    public bool DeterministicCollation { get; init; } = true;
}

using System.Text.RegularExpressions;

namespace Polystore.Postgres;

/// <summary>
/// Puts PostgreSQL identifiers into SQL text. <see cref="Quote"/> double-quotes any name (embedded quotes
/// doubled, as <c>quote_ident</c> does), for names read from the catalog; <see cref="QuotePlain"/> first
/// requires a plain lower-case identifier, for the few names a caller chooses (a schema, a table).
/// Values never go through here: they are sent as parameters.
/// </summary>
public static partial class PostgresIdentifier
{
    /// <summary>The longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer ones are truncated by the server.</summary>
    public const int MaxLength = 63;

    /// <summary>Double-quotes an identifier, doubling embedded quotes: <c>my"table</c> becomes <c>"my""table"</c>.</summary>
    /// <exception cref="ArgumentException">The identifier is empty or contains a NUL character (PostgreSQL has no such names).</exception>
    public static string Quote(string identifier)
    {
        ArgumentException.ThrowIfNullOrEmpty(identifier);
        if (identifier.Contains('\0', StringComparison.Ordinal)) throw new ArgumentException("a PostgreSQL identifier cannot contain a NUL character.", nameof(identifier));
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    /// <summary>A schema-qualified name, each part quoted: <c>"schema"."name"</c>.</summary>
    public static string Qualified(string schema, string name) => Quote(schema) + "." + Quote(name);

    /// <summary>True for a plain identifier: 1-63 lower-case ASCII letters, digits and underscores, not starting with a digit.</summary>
    public static bool IsPlain(string? identifier) => identifier is not null && PlainPattern().IsMatch(identifier);

    /// <summary>Checks that a caller-chosen name is a plain identifier (<see cref="IsPlain"/>) and returns it quoted.</summary>
    /// <param name="identifier">The name.</param>
    /// <param name="what">What the name is (for example <c>schema</c>), used in the message and as the parameter name.</param>
    /// <exception cref="ArgumentException">The name is not a plain identifier.</exception>
    public static string QuotePlain(string identifier, string what)
    {
        if (!IsPlain(identifier))
            throw new ArgumentException($"{what} '{identifier}' is not a valid identifier: use 1-{MaxLength} lower-case letters, digits and underscores, starting with a letter or underscore", what);
        return $"\"{identifier}\"";
    }

    // \z, not $: a .NET $ also matches before a final newline, and "name\n" would pass.
    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}\\z")]
    private static partial Regex PlainPattern();
}

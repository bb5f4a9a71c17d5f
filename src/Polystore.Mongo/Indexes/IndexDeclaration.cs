using System.Globalization;
using MongoDB.Bson;
using Polystore.Core.Configuration;

namespace Polystore.Mongo;

/// <summary>How one field of an index key is indexed.</summary>
public enum IndexKind
{
    /// <summary><c>1</c>.</summary>
    Ascending,
    /// <summary><c>-1</c>.</summary>
    Descending,
    /// <summary><c>"2dsphere"</c>: GeoJSON points, lines and polygons on a sphere.</summary>
    Geo2DSphere,
    /// <summary><c>"hashed"</c>: for hashed shard keys and equality lookups.</summary>
    Hashed,
}

/// <summary>One field of an index key.</summary>
/// <param name="Field">The field path, for example <c>created_at</c> or <c>address.city</c>.</param>
/// <param name="Kind">How it is indexed.</param>
public sealed record IndexField(string Field, IndexKind Kind)
{
    /// <summary>The value of this field in the <c>key</c> document.</summary>
    public BsonValue KeyValue => Kind switch
    {
        IndexKind.Ascending => 1,
        IndexKind.Descending => -1,
        IndexKind.Geo2DSphere => "2dsphere",
        _ => "hashed",
    };
}

/// <summary>
/// An index as the application wants it: key, name and the options Polystore manages
/// (unique, sparse, TTL). Compared with the server's <c>listIndexes</c> output by <see cref="MongoIndexes"/>.
/// </summary>
public sealed record IndexDeclaration
{
    /// <summary>Creates a declaration; call <see cref="Validate"/> (done by every <see cref="MongoIndexes"/> method) to check it.</summary>
    public IndexDeclaration(string collection, params IndexField[] keys)
    {
        Collection = collection;
        Keys = keys;
    }

    /// <summary>The collection the index belongs to.</summary>
    public string Collection { get; init; }
    /// <summary>The key fields, in order.</summary>
    public IReadOnlyList<IndexField> Keys { get; init; }
    /// <summary>The index name; null for the server's default (<c>field_1_other_-1</c>).</summary>
    public string? Name { get; init; }
    /// <summary>Reject documents with a duplicate key.</summary>
    public bool Unique { get; init; }
    /// <summary>Only index documents that have the field.</summary>
    public bool Sparse { get; init; }
    /// <summary>TTL: delete documents this many seconds after the date in the (single) key field.</summary>
    public long? ExpireAfterSeconds { get; init; }
    /// <summary>Where the declaration was read from (indexes.yaml position), for messages.</summary>
    public ConfigSource? Source { get; init; }

    /// <summary>The name used: <see cref="Name"/> or the server's default for the key.</summary>
    public string EffectiveName => Name ?? string.Join("_", Keys.Select(k => $"{k.Field}_{(k.KeyValue.IsString ? k.KeyValue.AsString : k.KeyValue.AsInt32.ToString(CultureInfo.InvariantCulture))}"));

    /// <summary>The <c>key</c> document, fields in declared order.</summary>
    public BsonDocument KeyDocument => new(Keys.Select(k => new BsonElement(k.Field, k.KeyValue)));

    /// <summary>The index spec as sent in <c>createIndexes.indexes</c>: key, name, then only the options that are set.</summary>
    public BsonDocument ToSpec()
    {
        var spec = new BsonDocument { { "key", KeyDocument }, { "name", EffectiveName } };
        if (Unique) spec.Add("unique", true);
        if (Sparse) spec.Add("sparse", true);
        if (ExpireAfterSeconds is { } ttl) spec.Add("expireAfterSeconds", new BsonInt32(checked((int)ttl)));
        return spec;
    }

    /// <summary>Problems with this declaration (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (string.IsNullOrEmpty(Collection) || Collection.Contains('$', StringComparison.Ordinal) || Collection.StartsWith("system.", StringComparison.Ordinal))
            problems.Add($"collection name '{Collection}' is empty, contains '$' or is a system collection");
        if (Keys is null || Keys.Count == 0) { problems.Add("has no key fields"); return problems; }
        foreach (var key in Keys)
            if (string.IsNullOrEmpty(key.Field) || key.Field.StartsWith('$') || key.Field.Contains('\0', StringComparison.Ordinal))
                problems.Add($"key field '{key.Field}' is empty or starts with '$'");
        foreach (var dup in Keys.GroupBy(k => k.Field, StringComparer.Ordinal).Where(g => g.Count() > 1))
            problems.Add($"key field '{dup.Key}' appears twice");
        if (Name is { } name && (name.Length == 0 || name == "*")) problems.Add($"index name '{name}' is not allowed");
        if (Keys.Count(k => k.Kind == IndexKind.Hashed) > 1) problems.Add("a key can hold only one hashed field");
        if (Unique && Keys.Any(k => k.Kind == IndexKind.Hashed)) problems.Add("a hashed index cannot be unique");
        if (ExpireAfterSeconds is { } ttl)
        {
            // The server's range: 0..2147483647 (a 32-bit integer).
            if (ttl is < 0 or > int.MaxValue) problems.Add($"expire_after_seconds must be 0..{int.MaxValue}");
            if (Keys.Count != 1 || Keys[0].Kind is not (IndexKind.Ascending or IndexKind.Descending))
                problems.Add("a TTL index (expire_after_seconds) must have exactly one ascending or descending field");
            else if (Keys[0].Field == "_id") problems.Add("a TTL index cannot be on _id");
        }
        return problems;
    }
}

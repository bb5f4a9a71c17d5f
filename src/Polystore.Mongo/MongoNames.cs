using MongoDB.Bson;

namespace Polystore.Mongo;

/// <summary>Checks of collection and field names before anything is sent.</summary>
internal static class MongoNames
{
    public static void ValidateCollection(string? name, string what)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{what}: collection name is empty", what);
        if (name.StartsWith("system.", StringComparison.Ordinal)) throw new ArgumentException($"{what}: '{name}' is a system collection", what);
        if (name.Contains('$', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException($"{what}: collection name '{name}' contains '$' or a NUL character", what);
    }

    public static void ValidateDatabase(string? name, string what)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{what}: database name is empty", what);
        if (name.IndexOfAny(['/', '\\', '.', ' ', '"', '$', '\0']) >= 0)
            throw new ArgumentException($"{what}: database name '{name}' contains one of / \\ . space \" $ or a NUL character", what);
    }

    /// <summary>A namespace written as a document, <c>{ db: "...", coll: "..." }</c> (the forms $out and $merge.into accept).</summary>
    public static void ValidateNamespace(BsonDocument ns, string what)
    {
        if (!ns.TryGetValue("coll", out var coll) || !coll.IsString) throw new ArgumentException($"{what}: names no collection (coll)", what);
        ValidateCollection(coll.AsString, $"{what}.coll");
        if (ns.TryGetValue("db", out var db))
        {
            if (!db.IsString) throw new ArgumentException($"{what}.db: must be a string", what);
            ValidateDatabase(db.AsString, $"{what}.db");
        }
    }

    public static void ValidateField(string? name, string what)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{what}: field name is empty", what);
        if (name.StartsWith('$') || name.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException($"{what}: field name '{name}' starts with '$' or contains a NUL character", what);
    }
}

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

    public static void ValidateField(string? name, string what)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{what}: field name is empty", what);
        if (name.StartsWith('$') || name.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException($"{what}: field name '{name}' starts with '$' or contains a NUL character", what);
    }
}

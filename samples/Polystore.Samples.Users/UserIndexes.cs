using Polystore.Mongo;

namespace Polystore.Samples.Users;

/// <summary>The indexes of the MongoDB users collection.</summary>
public static class UserIndexes
{
    /// <summary>Unique email, (region, created_at desc), (status, last_login desc) and a sparse 2dsphere on location.</summary>
    /// <param name="collection">The users collection.</param>
    public static IReadOnlyList<IndexDeclaration> Declarations(string collection = "users") =>
    [
        new(collection, new IndexField("email", IndexKind.Ascending)) { Unique = true },
        new(collection, new IndexField("region", IndexKind.Ascending), new IndexField("created_at", IndexKind.Descending)),
        new(collection, new IndexField("status", IndexKind.Ascending), new IndexField("last_login", IndexKind.Descending)),
        new(collection, new IndexField("location", IndexKind.Geo2DSphere)) { Sparse = true },
    ];
}

using MongoDB.Bson;
using MongoDB.Driver;

namespace Polystore.Mongo;

/// <summary>How an existing index compares with its declaration.</summary>
public enum IndexState
{
    /// <summary>Exists as declared.</summary>
    Matches,
    /// <summary>Declared, not on the server.</summary>
    Missing,
    /// <summary>Exists under the declared name or key, with another key, name or options.</summary>
    Differs,
    /// <summary>On the server, not declared (never <c>_id_</c>).</summary>
    Undeclared,
}

/// <summary>What <see cref="MongoIndexes.EnsureIndexesAsync"/> did about an index.</summary>
public enum IndexAction
{
    /// <summary>Nothing (it matches, or it differs / is undeclared and no flag allowed a drop).</summary>
    None,
    /// <summary>Created.</summary>
    Created,
    /// <summary>Dropped and created again as declared (<see cref="IndexEnsureOptions.RecreateDiffering"/>).</summary>
    Recreated,
    /// <summary>Dropped (<see cref="IndexEnsureOptions.DropUndeclared"/>).</summary>
    Dropped,
}

/// <summary>One line of the comparison between declarations and <c>listIndexes</c>.</summary>
/// <param name="Collection">The collection.</param>
/// <param name="Name">The declared name, or the server's name for an undeclared index.</param>
/// <param name="State">How it compares.</param>
/// <param name="Differences">For <see cref="IndexState.Differs"/>: each difference, as "what: declared X, server Y".</param>
/// <param name="Declared">The declared spec, if any.</param>
/// <param name="Existing">The server's spec, if any.</param>
/// <param name="Action">What was done.</param>
public sealed record IndexDiff(string Collection, string Name, IndexState State, IReadOnlyList<string> Differences,
    BsonDocument? Declared, BsonDocument? Existing, IndexAction Action = IndexAction.None);

/// <summary>Which destructive steps <see cref="MongoIndexes.EnsureIndexesAsync"/> may take. Both default to false.</summary>
public sealed record IndexEnsureOptions
{
    /// <summary>Drop an index that differs from its declaration and create it as declared.</summary>
    public bool RecreateDiffering { get; init; }
    /// <summary>Drop indexes that are not declared (except <c>_id_</c>).</summary>
    public bool DropUndeclared { get; init; }
}

/// <summary>Declared indexes: the <c>createIndexes</c> commands, the comparison with the server, and ensuring them.</summary>
public static class MongoIndexes
{
    /// <summary>Checks every declaration and that names and keys are unique per collection; throws listing all problems.</summary>
    public static void Validate(IReadOnlyList<IndexDeclaration> declarations)
    {
        ArgumentNullException.ThrowIfNull(declarations);
        var problems = new List<string>();
        foreach (var d in declarations)
            problems.AddRange(d.Validate().Select(p => $"{Where(d)}: {p}"));
        if (problems.Count == 0)
        {
            foreach (var group in declarations.GroupBy(d => d.Collection, StringComparer.Ordinal))
            {
                foreach (var dup in group.GroupBy(d => d.EffectiveName, StringComparer.Ordinal).Where(g => g.Count() > 1))
                    problems.Add($"{Where(dup.Last())}: index name '{dup.Key}' is declared twice on '{group.Key}'");
                foreach (var dup in group.GroupBy(d => d.KeyDocument.ToJson(), StringComparer.Ordinal).Where(g => g.Count() > 1))
                    problems.Add($"{Where(dup.Last())}: key {dup.Key} is declared twice on '{group.Key}'");
            }
        }
        if (problems.Count > 0) throw new ArgumentException("invalid index declarations:" + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", problems), nameof(declarations));
    }

    /// <summary>
    /// The <c>createIndexes</c> command for <paramref name="declarations"/> of one collection, as sent:
    /// <c>{ createIndexes: coll, indexes: [spec...] }</c>, plus <c>writeConcern</c> when one is configured.
    /// </summary>
    public static BsonDocument CreateIndexesCommand(string collection, IEnumerable<IndexDeclaration> declarations, WriteConcern? writeConcern = null)
    {
        var command = new BsonDocument
        {
            { "createIndexes", collection },
            { "indexes", new BsonArray(declarations.Select(d => d.ToSpec())) },
        };
        if (writeConcern is { IsServerDefault: false }) command.Add("writeConcern", writeConcern.ToBsonDocument());
        return command;
    }

    /// <summary>The <c>dropIndexes</c> command for one index.</summary>
    public static BsonDocument DropIndexCommand(string collection, string name, WriteConcern? writeConcern = null)
    {
        var command = new BsonDocument { { "dropIndexes", collection }, { "index", name } };
        if (writeConcern is { IsServerDefault: false }) command.Add("writeConcern", writeConcern.ToBsonDocument());
        return command;
    }

    /// <summary>
    /// Compares the declarations of one collection with what <c>listIndexes</c> returned for it.
    /// Pure: works on the documents the server returns. Options the server adds on its own
    /// (<c>v</c>, <c>ns</c>, <c>2dsphereIndexVersion</c>, <c>background</c>...) are ignored.
    /// </summary>
    public static IReadOnlyList<IndexDiff> Diff(string collection, IReadOnlyList<IndexDeclaration> declarations, IReadOnlyList<BsonDocument> existing)
    {
        var result = new List<IndexDiff>();
        var claimed = new HashSet<string>(StringComparer.Ordinal) { "_id_" };
        var mine = declarations.Where(d => d.Collection == collection).ToList();
        static string NameOf(BsonDocument index) => index.GetValue("name", "").ToString()!;
        // Names first: an index that a declaration names is that declaration's, whatever its key. Then, for a
        // declaration whose name is not on the server, the same key under another name (creating it would fail with
        // IndexOptionsConflict), among the indexes no declaration has taken or names; so no index is matched twice.
        var matches = mine.Select(d => existing.FirstOrDefault(e => NameOf(e) == d.EffectiveName)).ToArray();
        foreach (var match in matches) if (match is not null) claimed.Add(NameOf(match));
        var declaredNames = mine.Select(d => d.EffectiveName).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < mine.Count; i++)
        {
            if (matches[i] is not null) continue;
            var key = mine[i].ToSpec()["key"];
            matches[i] = existing.FirstOrDefault(e => !claimed.Contains(NameOf(e)) && !declaredNames.Contains(NameOf(e)) && KeysEqual(e.GetValue("key", new BsonDocument()), key));
            if (matches[i] is { } match) claimed.Add(NameOf(match));
        }
        for (var i = 0; i < mine.Count; i++)
        {
            var spec = mine[i].ToSpec();
            var name = mine[i].EffectiveName;
            if (matches[i] is not { } match)
            {
                result.Add(new IndexDiff(collection, name, IndexState.Missing, [], spec, null));
                continue;
            }
            var differences = Compare(spec, match);
            result.Add(new IndexDiff(collection, name, differences.Count == 0 ? IndexState.Matches : IndexState.Differs, differences, spec, match));
        }
        foreach (var other in existing.Where(e => !claimed.Contains(e.GetValue("name", "").ToString()!)))
            result.Add(new IndexDiff(collection, other.GetValue("name", "").ToString()!, IndexState.Undeclared, [], null, other));
        return result;
    }

    /// <summary>
    /// Creates the missing indexes (one <c>createIndexes</c> per collection) and reports the ones that differ or are not declared.
    /// Drops only what <paramref name="options"/> allows.
    /// </summary>
    public static async Task<IReadOnlyList<IndexDiff>> EnsureIndexesAsync(IMongoDatabase database, IReadOnlyList<IndexDeclaration> declarations,
        IndexEnsureOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        Validate(declarations);
        var report = new List<IndexDiff>();
        foreach (var collection in declarations.Select(d => d.Collection).Distinct(StringComparer.Ordinal))
        {
            var existing = await ListIndexesAsync(database, collection, cancellationToken).ConfigureAwait(false);
            var (diffs, commands) = Plan(collection, declarations, existing, options, database.Settings.WriteConcern);
            foreach (var command in commands)
                await database.RunCommandAsync<BsonDocument>(command, ReadPreference.Primary, cancellationToken).ConfigureAwait(false);
            report.AddRange(diffs);
        }
        return report;
    }

    /// <summary>
    /// What <see cref="EnsureIndexesAsync"/> does for one collection given its <c>listIndexes</c> output: the report
    /// (with actions) and the commands, in order (drops first, then one <c>createIndexes</c>). Pure.
    /// </summary>
    public static (IReadOnlyList<IndexDiff> Report, IReadOnlyList<BsonDocument> Commands) Plan(string collection,
        IReadOnlyList<IndexDeclaration> declarations, IReadOnlyList<BsonDocument> existing, IndexEnsureOptions? options = null, WriteConcern? writeConcern = null)
    {
        options ??= new IndexEnsureOptions();
        var mine = declarations.Where(d => d.Collection == collection).ToList();
        var toCreate = new List<IndexDeclaration>();
        var commands = new List<BsonDocument>();
        var report = new List<IndexDiff>();
        foreach (var diff in Diff(collection, mine, existing))
        {
            var declaration = mine.FirstOrDefault(d => d.EffectiveName == diff.Name);
            switch (diff.State)
            {
                case IndexState.Missing:
                    toCreate.Add(declaration!);
                    report.Add(diff with { Action = IndexAction.Created });
                    break;
                case IndexState.Differs when options.RecreateDiffering:
                    commands.Add(DropIndexCommand(collection, diff.Existing!["name"].AsString, writeConcern));
                    toCreate.Add(declaration!);
                    report.Add(diff with { Action = IndexAction.Recreated });
                    break;
                case IndexState.Undeclared when options.DropUndeclared:
                    commands.Add(DropIndexCommand(collection, diff.Name, writeConcern));
                    report.Add(diff with { Action = IndexAction.Dropped });
                    break;
                default:
                    report.Add(diff);
                    break;
            }
        }
        if (toCreate.Count > 0) commands.Add(CreateIndexesCommand(collection, toCreate, writeConcern));
        return (report, commands);
    }

    /// <summary>The server's index specs of a collection (empty when the collection does not exist).</summary>
    public static async Task<IReadOnlyList<BsonDocument>> ListIndexesAsync(IMongoDatabase database, string collection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        using var cursor = await database.GetCollection<BsonDocument>(collection).Indexes.ListAsync(cancellationToken).ConfigureAwait(false);
        return await cursor.ToListAsync(cancellationToken).ConfigureAwait(false);
    }

    private static List<string> Compare(BsonDocument declared, BsonDocument existing)
    {
        var differences = new List<string>();
        var existingName = existing.GetValue("name", "").ToString();
        if (existingName != declared["name"].AsString)
            differences.Add($"name: declared {declared["name"]}, server {existingName}");
        var existingKey = existing.GetValue("key", new BsonDocument());
        if (!KeysEqual(existingKey, declared["key"]))
            differences.Add($"key: declared {declared["key"].ToJson()}, server {existingKey.ToJson()}");
        foreach (var flag in new[] { "unique", "sparse" })
        {
            var d = declared.GetValue(flag, false).ToBoolean();
            var e = existing.GetValue(flag, false).ToBoolean();
            if (d != e) differences.Add($"{flag}: declared {d.ToString().ToLowerInvariant()}, server {e.ToString().ToLowerInvariant()}");
        }
        var dTtl = declared.GetValue("expireAfterSeconds", BsonNull.Value);
        var eTtl = existing.GetValue("expireAfterSeconds", BsonNull.Value);
        if (!NumbersEqual(dTtl, eTtl))
            differences.Add($"expireAfterSeconds: declared {(dTtl.IsBsonNull ? "none" : dTtl.ToString())}, server {(eTtl.IsBsonNull ? "none" : eTtl.ToString())}");
        // Options Polystore does not declare change which documents the index holds or how it compares them.
        foreach (var option in new[] { "partialFilterExpression", "collation", "hidden" })
            if (existing.Contains(option) && !(option == "hidden" && !existing[option].ToBoolean()))
                differences.Add($"{option}: not declared, server {existing[option].ToJson()}");
        return differences;
    }

    /// <summary>Same fields in the same order; numbers compare by value (the shell creates 1.0, drivers 1).</summary>
    internal static bool KeysEqual(BsonValue a, BsonValue b)
    {
        if (a is not BsonDocument x || b is not BsonDocument y || x.ElementCount != y.ElementCount) return false;
        for (var i = 0; i < x.ElementCount; i++)
        {
            var (ex, ey) = (x.GetElement(i), y.GetElement(i));
            if (ex.Name != ey.Name || !NumbersEqual(ex.Value, ey.Value)) return false;
        }
        return true;
    }

    private static bool NumbersEqual(BsonValue a, BsonValue b) =>
        a.IsNumeric && b.IsNumeric ? a.ToDecimal() == b.ToDecimal() : a.Equals(b);

    private static string Where(IndexDeclaration d) =>
        d.Source is { File: not null } s ? $"{s.File}:{s.Line}:{s.Column}: {d.Collection}" : d.Collection;
}

using System.Globalization;
using Polystore.Core.Configuration;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Polystore.Mongo;

/// <summary>
/// Reads index declarations from an <c>indexes.yaml</c>:
/// <code>
/// users:
///   - keys: { email: 1 }
///     unique: true
///   - keys: { location: 2dsphere }
///     sparse: true
/// sessions:
///   - keys: { created_at: 1 }
///     expire_after_seconds: 3600
/// </code>
/// Key values: <c>1</c>, <c>-1</c>, <c>2dsphere</c>, <c>hashed</c>. Every problem is reported with its file:line:column.
/// </summary>
public static class IndexYaml
{
    private static readonly string[] EntryKeys = ["keys", "name", "unique", "sparse", "expire_after_seconds"];

    /// <summary>
    /// Reads and validates <paramref name="path"/>; throws <see cref="ConfigException"/> listing every problem. Read as
    /// config files are: a regular file only (a FIFO is never opened), at most 1 MiB of UTF-8.
    /// </summary>
    public static IReadOnlyList<IndexDeclaration> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var fileName = Path.GetFileName(path);
        var errors = new List<ConfigError>();
        var text = ConfigFileReader.Read(path, fileName, errors);
        if (errors.Count > 0) throw new ConfigException(errors);
        if (text is null) throw new ConfigException([new ConfigError(new ConfigSource(fileName, 0, 0), "", $"{fileName} does not exist")]);
        return Parse(text, fileName);
    }

    /// <summary>Parses and validates YAML text; <paramref name="fileName"/> is used in messages.</summary>
    public static IReadOnlyList<IndexDeclaration> Parse(string yaml, string fileName = "indexes.yaml")
    {
        ArgumentNullException.ThrowIfNull(yaml);
        var errors = new List<ConfigError>();
        var result = new List<IndexDeclaration>();
        var stream = new YamlStream();
        try
        {
            // The event pass first: it refuses what would make loading the tree costly (deep nesting, aliases, size)
            // before the tree is built.
            if (Hostile(yaml, fileName) is { } refused) throw new ConfigException([refused]);
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ConfigException([new ConfigError(new ConfigSource(fileName, (int)e.Start.Line, (int)e.Start.Column), "", Inner(e).Message)]);
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" }) return result;
        if (stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new ConfigException([Error(fileName, stream.Documents[0].RootNode, "", "expected a mapping of collection name to a list of indexes")]);

        foreach (var (collectionNode, indexesNode) in root.Children)
        {
            if (collectionNode is not YamlScalarNode { Value: { } collection })
            {
                errors.Add(Error(fileName, collectionNode, "", "collection names must be plain names"));
                continue;
            }
            if (indexesNode is not YamlSequenceNode list)
            {
                errors.Add(Error(fileName, indexesNode, collection, "expected a list of indexes"));
                continue;
            }
            for (var i = 0; i < list.Children.Count; i++)
            {
                var path = $"{collection}[{i}]";
                if (list.Children[i] is not YamlMappingNode entry)
                {
                    errors.Add(Error(fileName, list.Children[i], path, "expected a mapping with keys:, and optionally name:, unique:, sparse:, expire_after_seconds:"));
                    continue;
                }
                var declaration = ParseEntry(fileName, collection, path, entry, errors);
                if (declaration is null) continue;
                errors.AddRange(declaration.Validate().Select(p => Error(fileName, entry, path, p)));
                result.Add(declaration);
            }
        }
        if (errors.Count == 0)
        {
            try { MongoIndexes.Validate(result); }
            catch (ArgumentException e) { errors.Add(new ConfigError(new ConfigSource(fileName, 0, 0), "", e.Message)); }
        }
        if (errors.Count > 0) throw new ConfigException(errors);
        return result;
    }

    private static IndexDeclaration? ParseEntry(string file, string collection, string path, YamlMappingNode entry, List<ConfigError> errors)
    {
        var before = errors.Count;
        var fields = new List<IndexField>();
        string? name = null;
        bool unique = false, sparse = false;
        long? ttl = null;
        foreach (var (keyNode, valueNode) in entry.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key })
            {
                errors.Add(Error(file, keyNode, path, "keys must be plain names"));
                continue;
            }
            var at = $"{path}.{key}";
            switch (key)
            {
                case "keys" when valueNode is YamlMappingNode keys:
                    foreach (var (fieldNode, kindNode) in keys.Children)
                    {
                        if (fieldNode is not YamlScalarNode { Value: { } field })
                        {
                            errors.Add(Error(file, fieldNode, at, "field names must be plain names"));
                            continue;
                        }
                        IndexKind? kind = (kindNode as YamlScalarNode)?.Value switch
                        {
                            "1" => IndexKind.Ascending,
                            "-1" => IndexKind.Descending,
                            "2dsphere" => IndexKind.Geo2DSphere,
                            "hashed" => IndexKind.Hashed,
                            _ => null,
                        };
                        if (kind is null) errors.Add(Error(file, kindNode, $"{at}.{field}", "must be 1, -1, 2dsphere or hashed"));
                        else fields.Add(new IndexField(field, kind.Value));
                    }
                    break;
                case "keys":
                    errors.Add(Error(file, valueNode, at, "expected a mapping of field to 1, -1, 2dsphere or hashed, for example { region: 1, created_at: -1 }"));
                    break;
                case "name":
                    name = Scalar(file, valueNode, at, errors);
                    break;
                case "unique":
                case "sparse":
                    var text = Scalar(file, valueNode, at, errors);
                    if (text is "true" or "false") { if (key == "unique") unique = text == "true"; else sparse = text == "true"; }
                    else if (text is not null) errors.Add(Error(file, valueNode, at, "must be true or false"));
                    break;
                case "expire_after_seconds":
                    var seconds = Scalar(file, valueNode, at, errors);
                    if (long.TryParse(seconds, NumberStyles.None, CultureInfo.InvariantCulture, out var s)) ttl = s;
                    else if (seconds is not null) errors.Add(Error(file, valueNode, at, "must be a whole number of seconds, 0 or more"));
                    break;
                default:
                    errors.Add(Error(file, keyNode, at, $"unknown key; expected one of {string.Join(", ", EntryKeys)}"));
                    break;
            }
        }
        if (!entry.Children.ContainsKey(new YamlScalarNode("keys"))) errors.Add(Error(file, entry, path, "keys: is missing"));
        if (errors.Count > before) return null;
        return new IndexDeclaration(collection, [.. fields])
        {
            Name = name,
            Unique = unique,
            Sparse = sparse,
            ExpireAfterSeconds = ttl,
            Source = new ConfigSource(file, (int)entry.Start.Line, (int)entry.Start.Column),
        };
    }

    private static string? Scalar(string file, YamlNode node, string at, List<ConfigError> errors)
    {
        if (node is YamlScalarNode { Value: { Length: > 0 } value }) return value;
        errors.Add(Error(file, node, at, "expected a value"));
        return null;
    }

    private static ConfigError Error(string file, YamlNode node, string keyPath, string message) =>
        new(new ConfigSource(file, (int)node.Start.Line, (int)node.Start.Column), keyPath, message);

    // The limits of config files (YamlConfigReader): nesting, number of values, one document, no anchors or aliases.
    private static ConfigError? Hostile(string yaml, string fileName)
    {
        var parser = new Parser(new StringReader(yaml));
        int depth = 0, nodes = 0, documents = 0;
        while (parser.MoveNext())
        {
            var current = parser.Current!;
            var at = new ConfigSource(fileName, (int)current.Start.Line, (int)current.Start.Column);
            switch (current)
            {
                case DocumentStart when ++documents > 1:
                    return new ConfigError(at, "", "an indexes file holds one YAML document; remove the second '---' document");
                case AnchorAlias:
                case NodeEvent { Anchor.IsEmpty: false }:
                    return new ConfigError(at, "", "anchors and aliases (&name, *name) are not supported; write the value out");
                case MappingStart or SequenceStart when ++depth > YamlConfigReader.MaxDepth:
                    return new ConfigError(at, "", $"nested more than {YamlConfigReader.MaxDepth} levels deep; an indexes file is never this deep");
                case MappingEnd or SequenceEnd:
                    depth--;
                    break;
            }
            if (current is (YamlDotNet.Core.Events.Scalar or MappingStart or SequenceStart) && ++nodes > YamlConfigReader.MaxNodes)
                return new ConfigError(at, "", $"the file holds more than {YamlConfigReader.MaxNodes:N0} values; refused");
        }
        return null;
    }

    private static Exception Inner(Exception e) => e.InnerException is YamlException inner ? Inner(inner) : e;
}

using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Polystore.Core.Configuration;

/// <summary>
/// A parsed configuration value that remembers where it came from, so that every later
/// problem (type, range, unknown key) can name its file, line and key.
/// </summary>
internal abstract class ConfigNode(ConfigSource source)
{
    public ConfigSource Source { get; set; } = source;
}

internal sealed class ConfigScalar(string? value, ConfigSource source) : ConfigNode(source)
{
    /// <summary>The text after ${VAR} substitution; null for YAML null (<c>~</c>, <c>null</c> or nothing).</summary>
    public string? Value { get; set; } = value;
}

internal sealed class ConfigList(List<ConfigNode> items, ConfigSource source) : ConfigNode(source)
{
    public List<ConfigNode> Items { get; } = items;
}

internal sealed class ConfigMap(ConfigSource source) : ConfigNode(source)
{
    // Ordered: file order is the order errors are reported in.
    public List<KeyValuePair<string, ConfigNode>> Entries { get; } = [];

    public ConfigNode? Get(string key) => Entries.FirstOrDefault(e => e.Key == key).Value;

    public void Set(string key, ConfigNode value)
    {
        var index = Entries.FindIndex(e => e.Key == key);
        if (index >= 0) Entries[index] = new(key, value);
        else Entries.Add(new(key, value));
    }
}

/// <summary>Reads a YAML file into <see cref="ConfigNode"/>s, reporting syntax errors with their position.</summary>
internal static class YamlConfigReader
{
    public static ConfigMap? Read(string fileName, string text, List<ConfigError> errors)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var message = e.InnerException is { } inner && inner.Message != e.Message ? $"{e.Message} {inner.Message}" : e.Message;
            errors.Add(new ConfigError(new ConfigSource(fileName, (int)e.Start.Line, (int)e.Start.Column), "", $"YAML syntax error: {StripPosition(message)}"));
            return null;
        }

        if (stream.Documents.Count == 0) return new ConfigMap(new ConfigSource(fileName, 1, 1));
        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode.Start;
            errors.Add(new ConfigError(new ConfigSource(fileName, (int)second.Line, (int)second.Column), "", "a config file holds one YAML document; remove the second '---' document"));
            return null;
        }

        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" or "~" or "null" }) return new ConfigMap(Position(fileName, root));
        if (root is not YamlMappingNode) {
            errors.Add(new ConfigError(Position(fileName, root), "", "the top level of a config file must be a mapping of sections (connection:, pool:, ...)"));
            return null;
        }
        return (ConfigMap)Convert(fileName, root, "", errors);
    }

    private static ConfigNode Convert(string file, YamlNode node, string path, List<ConfigError> errors)
    {
        switch (node)
        {
            case YamlMappingNode mapping:
                var map = new ConfigMap(Position(file, node));
                foreach (var (keyNode, valueNode) in mapping.Children)
                {
                    if (keyNode is not YamlScalarNode { Value: { } key })
                    {
                        errors.Add(new ConfigError(Position(file, keyNode), path, "mapping keys must be plain names"));
                        continue;
                    }
                    var childPath = path.Length == 0 ? key : $"{path}.{key}";
                    if (map.Get(key) is not null)
                    {
                        errors.Add(new ConfigError(Position(file, keyNode), childPath, "this key appears twice; keep one"));
                        continue;
                    }
                    var child = Convert(file, valueNode, childPath, errors);
                    // Errors point at the key, where a reader looks first.
                    child.Source = Position(file, keyNode);
                    map.Entries.Add(new(key, child));
                }
                return map;
            case YamlSequenceNode sequence:
                var items = new List<ConfigNode>();
                var i = 0;
                foreach (var item in sequence.Children) items.Add(Convert(file, item, $"{path}[{i++}]", errors));
                return new ConfigList(items, Position(file, node));
            case YamlScalarNode scalar:
                var isNull = scalar.Style == YamlDotNet.Core.ScalarStyle.Plain && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL";
                return new ConfigScalar(isNull ? null : scalar.Value, Position(file, node));
            default:
                errors.Add(new ConfigError(Position(file, node), path, "aliases and tags are not supported in config files"));
                return new ConfigScalar(null, Position(file, node));
        }
    }

    private static ConfigSource Position(string file, YamlNode node) => new(file, (int)node.Start.Line, (int)node.Start.Column);

    // YamlDotNet prefixes messages with "(Line: 3, Col: 5, Idx: ...) - (Line: ...): "; we print our own position.
    private static string StripPosition(string message)
    {
        var marker = message.LastIndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && marker > 0 ? message[(marker + 3)..] : message;
    }
}

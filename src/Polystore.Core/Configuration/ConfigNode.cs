using YamlDotNet.Core;
using YamlDotNet.Core.Events;

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

    /// <summary>True when <see cref="Value"/> came (at least in part) from an environment variable: errors never quote it.</summary>
    public bool FromVariable { get; set; }
}

internal sealed class ConfigList(List<ConfigNode> items, ConfigSource source) : ConfigNode(source)
{
    public List<ConfigNode> Items { get; } = items;
}

internal sealed class ConfigMap(ConfigSource source) : ConfigNode(source)
{
    // Ordered: file order is the order errors are reported in.
    public List<KeyValuePair<string, ConfigNode>> Entries { get; } = [];

    public ConfigNode? Get(string key)
    {
        foreach (var (k, v) in Entries) if (k == key) return v;
        return null;
    }

    public void Set(string key, ConfigNode value)
    {
        var index = Entries.FindIndex(e => e.Key == key);
        if (index >= 0) Entries[index] = new(key, value);
        else Entries.Add(new(key, value));
    }
}

/// <summary>
/// Reads a YAML file into <see cref="ConfigNode"/>s, reporting syntax errors with their position. Built from the
/// parser's events with an explicit stack, so hostile input costs time linear in its size: nesting deeper than
/// <see cref="MaxDepth"/>, more than <see cref="MaxNodes"/> values, anchors and aliases (which a config never needs
/// and an alias bomb abuses) are refused with an error at their position, and parsing stops there.
/// </summary>
internal static class YamlConfigReader
{
    /// <summary>Deepest nesting of mappings and lists accepted (the settings are four levels deep).</summary>
    public const int MaxDepth = 32;

    /// <summary>Most keys, list items and values a file may hold.</summary>
    public const int MaxNodes = 100_000;

    public static ConfigMap? Read(string fileName, string text, List<ConfigError> errors)
    {
        var parser = new Parser(new StringReader(text));
        var stack = new Stack<Frame>();
        ConfigNode? root = null;
        var documents = 0;
        var nodes = 0;
        try
        {
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                var at = Position(fileName, current.Start);
                switch (current)
                {
                    case DocumentStart:
                        if (++documents > 1)
                        {
                            errors.Add(new ConfigError(at, "", "a config file holds one YAML document; remove the second '---' document"));
                            return null;
                        }
                        continue;
                    case AnchorAlias:
                        errors.Add(new ConfigError(at, Path(stack), "aliases (*name) are not supported in config files; write the value out"));
                        return null;
                    case NodeEvent { Anchor.IsEmpty: false }:
                        errors.Add(new ConfigError(at, Path(stack), "anchors (&name) are not supported in config files; write the value out"));
                        return null;
                }
                if (current is not (Scalar or MappingStart or SequenceStart or MappingEnd or SequenceEnd)) continue;
                if (current is MappingEnd or SequenceEnd)
                {
                    var done = stack.Pop();
                    Attach(stack, done.Node, ref root);
                    continue;
                }
                if (++nodes > MaxNodes)
                {
                    errors.Add(new ConfigError(at, Path(stack), $"the file holds more than {MaxNodes:N0} values, far more than any config; refused"));
                    return null;
                }
                if (stack.TryPeek(out var parent) && parent.Node is ConfigMap && parent.PendingKey is null)
                {
                    // A key: only plain scalars are names.
                    if (current is not Scalar { Value: { } key })
                    {
                        errors.Add(new ConfigError(at, parent.Path, "mapping keys must be plain names"));
                        return null;
                    }
                    var keyPath = parent.Path.Length == 0 ? key : $"{parent.Path}.{key}";
                    if (!parent.Keys!.Add(key))
                    {
                        errors.Add(new ConfigError(at, keyPath, "this key appears twice; keep one"));
                        // Keep parsing for more errors, but drop the duplicate's value.
                        parent.PendingKey = key;
                        parent.PendingKeySource = at;
                        parent.SkipPending = true;
                        continue;
                    }
                    parent.PendingKey = key;
                    parent.PendingKeySource = at;
                    continue;
                }
                switch (current)
                {
                    case Scalar scalar:
                        var isNull = scalar.Style == ScalarStyle.Plain && scalar.Value is "" or "~" or "null" or "Null" or "NULL";
                        Attach(stack, new ConfigScalar(isNull ? null : scalar.Value, at), ref root);
                        break;
                    case MappingStart or SequenceStart:
                        if (stack.Count >= MaxDepth)
                        {
                            errors.Add(new ConfigError(at, Path(stack), $"nested more than {MaxDepth} levels deep; a config is never this deep"));
                            return null;
                        }
                        var path = ChildPath(stack);
                        stack.Push(current is MappingStart
                            ? new Frame(new ConfigMap(at), path) { Keys = new HashSet<string>(StringComparer.Ordinal) }
                            : new Frame(new ConfigList([], at), path));
                        break;
                }
            }
        }
        catch (YamlException e)
        {
            var message = e.InnerException is { } inner && inner.Message != e.Message ? $"{e.Message} {inner.Message}" : e.Message;
            errors.Add(new ConfigError(new ConfigSource(fileName, (int)e.Start.Line, (int)e.Start.Column), "", $"YAML syntax error: {StripPosition(message)}"));
            return null;
        }

        switch (root)
        {
            case null:
                return new ConfigMap(new ConfigSource(fileName, 1, 1));
            case ConfigScalar { Value: null }:
                return new ConfigMap(root.Source);
            case ConfigMap map:
                return map;
            default:
                errors.Add(new ConfigError(root.Source, "", "the top level of a config file must be a mapping of sections (connection:, pool:, ...)"));
                return null;
        }
    }

    /// <summary>Hands a finished node to its parent (or makes it the root).</summary>
    private static void Attach(Stack<Frame> stack, ConfigNode node, ref ConfigNode? root)
    {
        if (!stack.TryPeek(out var parent))
        {
            root = node;
            return;
        }
        if (parent.Node is ConfigList list)
        {
            list.Items.Add(node);
            return;
        }
        var map = (ConfigMap)parent.Node;
        if (!parent.SkipPending)
        {
            // Errors point at the key, where a reader looks first.
            node.Source = parent.PendingKeySource!;
            map.Entries.Add(new(parent.PendingKey!, node));
        }
        parent.PendingKey = null;
        parent.SkipPending = false;
    }

    private static string ChildPath(Stack<Frame> stack)
    {
        if (!stack.TryPeek(out var parent)) return "";
        if (parent.Node is ConfigList list) return $"{parent.Path}[{list.Items.Count}]";
        return parent.Path.Length == 0 ? parent.PendingKey! : $"{parent.Path}.{parent.PendingKey}";
    }

    private static string Path(Stack<Frame> stack) => stack.TryPeek(out var top) ? top.Path : "";

    private sealed class Frame(ConfigNode node, string path)
    {
        public ConfigNode Node { get; } = node;
        public string Path { get; } = path;
        public HashSet<string>? Keys { get; init; }
        public string? PendingKey { get; set; }
        public ConfigSource? PendingKeySource { get; set; }
        public bool SkipPending { get; set; }
    }

    private static ConfigSource Position(string file, Mark mark) => new(file, (int)mark.Line, (int)mark.Column);

    // YamlDotNet prefixes messages with "(Line: 3, Col: 5, Idx: ...) - (Line: ...): "; we print our own position.
    private static string StripPosition(string message)
    {
        var marker = message.LastIndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && marker > 0 ? message[(marker + 3)..] : message;
    }
}

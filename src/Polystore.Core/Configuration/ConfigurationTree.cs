using System.Collections;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;

namespace Polystore.Core.Configuration;

/// <summary>
/// Reads an <see cref="IConfiguration"/> section into the <see cref="ConfigNode"/> tree the binder takes, so values
/// from appsettings.json, environment variables or a YAML folder meet the same binder and validator as the YAML
/// folder itself. Each node's <see cref="ConfigSource"/> names its configuration key and the provider that supplied
/// it, found the way the configuration itself finds a value: the last provider that has the key wins.
/// </summary>
internal sealed class ConfigurationTree
{
    /// <summary>The section that holds the stores, by convention (<c>Polystore:Postgres:Pool:MaxSize</c>).</summary>
    public const string SectionName = "Polystore";

    // Settings are four levels deep; a configuration nested far deeper is not a Polystore configuration.
    private const int MaxDepth = 32;

    private readonly List<ConfigError> _errors;
    // Lowest precedence first, as IConfigurationRoot lists them; null when the section's root cannot be reached.
    private readonly List<IConfigurationProvider>? _providers;
    private Dictionary<string, string>? _environmentNames;

    public ConfigurationTree(IConfiguration configuration, List<ConfigError> errors)
    {
        _errors = errors;
        if (RootOf(configuration) is { } root)
        {
            _providers = [];
            AddProviders(root, _providers, depth: 0);
        }
    }

    /// <summary>The key of a store's section: <c>Postgres</c>, <c>Redis</c> or <c>Mongo</c>.</summary>
    public static string SectionKey(string store) => store switch
    {
        StoreNames.Postgres => "Postgres",
        StoreNames.Redis => "Redis",
        StoreNames.Mongo => "Mongo",
        _ => throw new ArgumentOutOfRangeException(nameof(store), store, "unknown store"),
    };

    /// <summary>
    /// Reads a key written under one or more spellings (<c>ReadReplicas</c> and <c>read_replicas</c> are one key to
    /// the binder but two to the configuration): their children are merged, and where two spellings set one value the
    /// provider added last wins, as it would for one spelling.
    /// </summary>
    public ConfigNode Read(IReadOnlyList<IConfigurationSection> spellings) => Read(spellings, depth: 0);

    private ConfigNode Read(IReadOnlyList<IConfigurationSection> spellings, int depth)
    {
        var children = spellings.SelectMany(s => s.GetChildren()).ToList();
        if (children.Count == 0) return ReadValue(spellings);
        if (depth >= MaxDepth)
        {
            _errors.Add(new ConfigError(SourceOf(spellings[0]), "", $"nested more than {MaxDepth} levels deep; a config is never this deep"));
            return new ConfigScalar(null, SourceOf(spellings[0]));
        }

        // A list is a section whose keys are all indexes (0, 1, ...), in index order whatever order they come in.
        if (children.All(c => IsIndex(c.Key)))
        {
            var items = children
                .GroupBy(c => int.Parse(c.Key, NumberStyles.None, CultureInfo.InvariantCulture))
                .OrderBy(g => g.Key)
                .Select(g => Read(g.ToList(), depth + 1))
                .ToList();
            return new ConfigList(items, SectionSource(spellings, items[0].Source));
        }

        var entries = children
            .GroupBy(c => ConfigBinder.NormalizeKey(c.Key), StringComparer.Ordinal)
            .Select(g => new KeyValuePair<string, ConfigNode>(g.First().Key, Read(g.ToList(), depth + 1)))
            .ToList();
        var map = new ConfigMap(SectionSource(spellings, entries[0].Value.Source));
        map.Entries.AddRange(entries);
        return map;
    }

    private ConfigScalar ReadValue(IReadOnlyList<IConfigurationSection> spellings)
    {
        if (spellings.Count == 1) return Scalar(spellings[0]);
        // Several spellings of one key, each with a value: the provider added last wins; within one provider there is no winner.
        var ranked = spellings.Select(s => (Section: s, Rank: Rank(s.Path))).OrderBy(x => x.Rank).ToList();
        var winner = ranked[^1];
        if (winner.Rank < 0 || ranked[^2].Rank == winner.Rank)
        {
            var names = string.Join(" and ", spellings.Select(s => $"'{s.Key}'"));
            _errors.Add(new ConfigError(SourceOf(winner.Section), "", $"{names} are one key written two ways; keep one"));
        }
        return Scalar(winner.Section);
    }

    private ConfigScalar Scalar(IConfigurationSection section)
    {
        var provider = ProviderOf(section.Path);
        if (provider is PolystoreYamlConfigurationProvider yaml && yaml.TryGetOrigin(section.Path, out var origin, out var fromVariable))
            return new ConfigScalar(section.Value, origin with { ConfigurationKey = section.Path }) { FromVariable = fromVariable };
        var source = Describe(section.Path, provider);
        // Like ${VAR} in YAML: a value an environment variable set may be a secret in the wrong key, so errors never quote it.
        return new ConfigScalar(section.Value, source) { FromVariable = source.EnvironmentVariable is not null };
    }

    /// <summary>Where a section is: its YAML position when its first value came from a YAML folder, else its key and the provider of its first value.</summary>
    private ConfigSource SectionSource(IReadOnlyList<IConfigurationSection> spellings, ConfigSource firstChild)
    {
        var path = spellings[0].Path;
        if (firstChild.Line > 0)
        {
            for (var i = (_providers?.Count ?? 0) - 1; i >= 0; i--)
                if (_providers![i] is PolystoreYamlConfigurationProvider yaml && yaml.TryGetOrigin(path, out var origin, out _) && origin.File == firstChild.File)
                    return origin with { ConfigurationKey = path };
        }
        return firstChild.EnvironmentVariable is not null
            ? new ConfigSource(null, 0, 0) { ConfigurationKey = path, Provider = "environment variables" }
            : new ConfigSource(firstChild.Line > 0 ? null : firstChild.File, 0, 0) { ConfigurationKey = path, Provider = firstChild.Provider };
    }

    /// <summary>The source of a section or value, for an error about it as a whole.</summary>
    public ConfigSource SourceOf(IConfigurationSection section)
    {
        var leaf = section;
        for (var depth = 0; depth < MaxDepth && leaf.GetChildren().FirstOrDefault() is { } child; depth++) leaf = child;
        var leafSource = Scalar(leaf).Source;
        return leaf == section ? leafSource : SectionSource([section], leafSource);
    }

    private static bool IsIndex(string key) => key.Length is > 0 and <= 9 && key.All(char.IsAsciiDigit);

    /// <summary>The position of the provider that supplies <paramref name="key"/>, highest wins; -1 when unknown.</summary>
    private int Rank(string key)
    {
        if (_providers is null) return -1;
        for (var i = _providers.Count - 1; i >= 0; i--)
            if (_providers[i].TryGet(key, out _)) return i;
        return -1;
    }

    private IConfigurationProvider? ProviderOf(string key) => Rank(key) is >= 0 and var i ? _providers![i] : null;

    /// <summary>Names a value's provider the way its user knows it: a file by its path, a variable by its name.</summary>
    private ConfigSource Describe(string key, IConfigurationProvider? provider)
    {
        var source = new ConfigSource(null, 0, 0) { ConfigurationKey = key };
        switch (provider)
        {
            case null:
                return source;
            case FileConfigurationProvider file:
                var path = file.Source.Path ?? file.ToString();
                return source with { File = path, Provider = path };
            case MemoryConfigurationProvider:
                return source with { Provider = "in-memory configuration" };
        }
        // Core does not reference the environment variables provider; its name and ToString ("... Prefix: 'X_'") are stable.
        if (provider.GetType().Name == "EnvironmentVariablesConfigurationProvider")
        {
            var variable = EnvironmentVariableOf(PrefixOf(provider.ToString()), key);
            return source with { EnvironmentVariable = variable, Provider = $"environment variable {variable}" };
        }
        return source with { Provider = provider.ToString() };
    }

    private static string PrefixOf(string? description)
    {
        const string Marker = "Prefix: '";
        var start = description?.IndexOf(Marker, StringComparison.Ordinal) ?? -1;
        if (start < 0) return "";
        var end = description!.LastIndexOf('\'');
        return end > start + Marker.Length ? description[(start + Marker.Length)..end] : "";
    }

    /// <summary>The variable that holds <paramref name="key"/>, spelled as the environment spells it.</summary>
    private string EnvironmentVariableOf(string prefix, string key)
    {
        _environmentNames ??= ReadEnvironmentNames();
        var wanted = prefix + key.Replace(":", "__", StringComparison.Ordinal);
        return _environmentNames.TryGetValue(wanted, out var actual) ? actual : wanted;
    }

    // Keyed by the name with ':' written as '__', case-insensitively, as the provider reads them.
    private static Dictionary<string, string> ReadEnvironmentNames()
    {
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
            if (entry.Key is string name) names.TryAdd(name.Replace(":", "__", StringComparison.Ordinal), name);
        return names;
    }

    private static IConfigurationRoot? RootOf(IConfiguration configuration)
    {
        switch (configuration)
        {
            case IConfigurationRoot root:
                return root;
            case ConfigurationSection section:
                try { return SectionRoot(section); }
                catch (MissingFieldException) { return null; }
            default:
                return null;
        }
    }

    // ConfigurationSection keeps its root private; without it a value's provider is unknown and errors name the key only.
    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_root")]
    private static extern ref IConfigurationRoot SectionRoot(ConfigurationSection section);

    // A chained configuration (AddConfiguration) is its own providers, at its place in the order.
    private static void AddProviders(IConfigurationRoot root, List<IConfigurationProvider> providers, int depth)
    {
        foreach (var provider in root.Providers)
        {
            if (provider is ChainedConfigurationProvider { Configuration: IConfigurationRoot inner } && depth < 8) AddProviders(inner, providers, depth + 1);
            else providers.Add(provider);
        }
    }
}

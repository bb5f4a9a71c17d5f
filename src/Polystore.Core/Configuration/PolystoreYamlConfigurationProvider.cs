using Microsoft.Extensions.Configuration;

namespace Polystore.Core.Configuration;

/// <summary>
/// A YAML config folder as a configuration provider: postgresql.yaml, redis.yaml and mongodb.yaml, read through the
/// same hardened reader as <see cref="PolystoreConfig.Load(string, IReadOnlyDictionary{string, string})"/> (size
/// limit, regular files only, <c>${VAR}</c> expanded), appear under <c>Polystore:Postgres</c>, <c>Polystore:Redis</c>
/// and <c>Polystore:Mongo</c>. Known keys take their .NET spelling (<c>Polystore:Postgres:Pool:MaxSize</c>), so that
/// appsettings.json or an environment variable overrides them as it would any other provider's. Each key remembers
/// its file, line and column (and whether its value came from a variable), for errors to name.
/// </summary>
internal sealed class PolystoreYamlConfigurationProvider(string directory, bool optional, IReadOnlyDictionary<string, string>? environment)
    : ConfigurationProvider
{
    private Dictionary<string, Origin> _origins = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The folder, as a full path.</summary>
    public string Directory { get; } = directory;

    /// <summary>Reads the folder; throws <see cref="ConfigException"/> listing every problem in its files.</summary>
    public override void Load()
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var origins = new Dictionary<string, Origin>(StringComparer.OrdinalIgnoreCase);
        if (!System.IO.Directory.Exists(Directory))
        {
            if (!optional)
            {
                throw new ConfigException(
                    $"config folder '{Directory}' does not exist; create it with postgresql.yaml, redis.yaml and/or mongodb.yaml, " +
                    "add it with optional: true to go without it, or set the stores' keys in another configuration source " +
                    $"({ConfigurationTree.SectionName}:Postgres:Connection:Host in appsettings.json, or the environment variable " +
                    $"{ConfigurationTree.SectionName}__Postgres__Connection__Host)");
            }
        }
        else
        {
            var errors = new List<ConfigError>();
            var variables = environment ?? PolystoreConfig.ProcessEnvironment();
            foreach (var store in StoreNames.All)
            {
                var root = ConfigLoader.ReadStoreFile(Directory, store, variables, errors, out _);
                if (root is null) continue;
                var type = store switch
                {
                    StoreNames.Postgres => typeof(PostgresSettings),
                    StoreNames.Redis => typeof(RedisSettings),
                    _ => typeof(MongoSettings),
                };
                Flatten(root, type, $"{ConfigurationTree.SectionName}:{ConfigurationTree.SectionKey(store)}", "", data, origins, errors);
            }
            // A file that did not read has no values to offer: fail now, as a malformed appsettings.json does.
            if (errors.Count > 0) throw new ConfigException(ConfigLoader.Order(errors));
        }
        Data = data;
        _origins = origins;
    }

    /// <summary>Where the value (or section) at <paramref name="key"/> was written, and whether a <c>${VAR}</c> supplied it.</summary>
    public bool TryGetOrigin(string key, out ConfigSource source, out bool fromVariable)
    {
        var found = _origins.TryGetValue(key, out var origin);
        source = found ? origin.Source : ConfigSource.Default;
        fromVariable = found && origin.FromVariable;
        return found;
    }

    /// <inheritdoc />
    public override string ToString() => $"Polystore YAML folder '{Directory}'{(optional ? " (optional)" : "")}";

    private static void Flatten(ConfigNode node, Type? type, string key, string path, Dictionary<string, string?> data,
        Dictionary<string, Origin> origins, List<ConfigError> errors)
    {
        if (!origins.TryAdd(key, new Origin(node.Source, node is ConfigScalar { FromVariable: true })))
        {
            // postgresql.yaml with both max_size and MaxSize: one key to the configuration.
            errors.Add(new ConfigError(node.Source, path, "this key is also written another way in the same file; keep one"));
            return;
        }
        type = type is null ? null : Nullable.GetUnderlyingType(type) ?? type;
        switch (node)
        {
            case ConfigScalar scalar:
                data[key] = scalar.Value;
                break;
            case ConfigList { Items.Count: 0 }:
            case ConfigMap { Entries.Count: 0 }:
                // As appsettings.json gives an empty array or object: the key is there, without a value.
                data[key] = null;
                break;
            case ConfigList list:
                var itemType = type is { IsGenericType: true } ? type.GetGenericArguments()[0] : null;
                for (var i = 0; i < list.Items.Count; i++) Flatten(list.Items[i], itemType, $"{key}:{i}", $"{path}[{i}]", data, origins, errors);
                break;
            case ConfigMap map:
                var properties = type is not null && type.IsClass && type != typeof(string) && !type.IsGenericType ? ConfigBinder.SettableProperties(type) : null;
                foreach (var (name, child) in map.Entries)
                {
                    // A key the settings do not have keeps its spelling, for the binder to report with a suggestion.
                    var property = properties?.GetValueOrDefault(name);
                    Flatten(child, property?.PropertyType, $"{key}:{property?.Name ?? name}", ConfigBinder.Join(path, name), data, origins, errors);
                }
                break;
        }
    }

    private readonly record struct Origin(ConfigSource Source, bool FromVariable);
}

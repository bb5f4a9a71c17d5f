using Microsoft.Extensions.Configuration;

namespace Polystore.Core.Configuration;

/// <summary>
/// Reads the stores' settings, binds and validates them, all or nothing: from the three files of a config folder with
/// the environment on top, or from an <see cref="IConfiguration"/> section. Both go through one binder and one
/// validator, so a bad value gets the same message wherever it was written.
/// </summary>
internal static class ConfigLoader
{
    public static PolystoreConfig Load(string directory, IReadOnlyDictionary<string, string> environment)
    {
        var errors = new List<ConfigError>();
        if (!System.IO.Directory.Exists(directory))
        {
            var anyEnvironment = new[] { StoreNames.Postgres, StoreNames.Mongo, StoreNames.Redis }.Any(s => EnvironmentOverrides.Configures(s, environment));
            if (File.Exists(directory)) throw new ConfigException($"config folder '{directory}' is a file, not a folder");
            if (!anyEnvironment) throw new ConfigException(MissingFolder(directory));
        }

        var sources = new Dictionary<string, IReadOnlyDictionary<string, ConfigSource>>();
        var validation = new ConfigValidator(sources);
        // Range and cross-key rules run for each store whose file parsed and bound cleanly, so one
        // report lists every problem without rules tripping over values that failed to convert.
        var postgres = LoadStore<PostgresSettings>(directory, StoreNames.Postgres, environment, errors, sources, validation.Validate);
        var mongo = LoadStore<MongoSettings>(directory, StoreNames.Mongo, environment, errors, sources, validation.Validate);
        var redis = LoadStore<RedisSettings>(directory, StoreNames.Redis, environment, errors, sources, validation.Validate);
        errors.AddRange(validation.Errors);
        if (postgres is null && mongo is null && redis is null && errors.Count == 0)
            errors.Add(new ConfigError(ConfigSource.Default, "", $"no store is configured: '{directory}' holds none of postgresql.yaml, mongodb.yaml, redis.yaml"));
        if (errors.Count > 0) throw new ConfigException(Order(errors));
        return new PolystoreConfig(System.IO.Directory.Exists(directory) ? Path.GetFullPath(directory) : null, postgres, mongo, redis, sources);
    }

    /// <summary>
    /// Why a config folder that does not exist cannot be loaded, and the other ways to configure the stores. Library
    /// wording: a command-line tool adds how its own options choose the folder.
    /// </summary>
    internal static string MissingFolder(string directory) =>
        $"config folder '{directory}' does not exist; create it with postgresql.yaml, redis.yaml and/or mongodb.yaml, " +
        $"or configure the stores without files: through POLYSTORE_POSTGRES_URL, POLYSTORE_REDIS_URL, POLYSTORE_MONGO_URL " +
        $"and {EnvironmentOverrides.KeyPrefix}STORE__SECTION__KEY variables, or through a configuration section " +
        $"({ConfigurationTree.SectionName}:Postgres, :Redis, :Mongo in appsettings.json or environment variables) loaded with PolystoreConfig.Load(IConfiguration)";

    private static T? LoadStore<T>(string directory, string store, IReadOnlyDictionary<string, string> environment,
        List<ConfigError> errors, Dictionary<string, IReadOnlyDictionary<string, ConfigSource>> sources, Action<T> validate) where T : class, new()
    {
        var errorsBefore = errors.Count;
        var root = ReadStoreFile(directory, store, environment, errors, out var present);
        if (present && root is null) return null;
        if (root is null)
        {
            if (!EnvironmentOverrides.Configures(store, environment)) return null;
            root = new ConfigMap(ConfigSource.Default);
        }

        EnvironmentOverrides.ApplyUrl(store, root, environment, errors);
        EnvironmentOverrides.ApplyKeys(store, root, environment, errors);
        var binder = new ConfigBinder(errors);
        var settings = binder.Bind<T>(root);
        sources[store] = binder.Sources;
        if (errors.Count == errorsBefore) validate(settings);
        return settings;
    }

    /// <summary>
    /// Reads one store's file (<c>postgresql.yaml</c>, else <c>postgresql.yml</c>) through the hardened reader and
    /// expands its <c>${VAR}</c>s. Null when the file is absent (<paramref name="present"/> false) or did not read
    /// (errors added).
    /// </summary>
    internal static ConfigMap? ReadStoreFile(string directory, string store, IReadOnlyDictionary<string, string> environment,
        List<ConfigError> errors, out bool present)
    {
        var stem = StoreNames.ConfigFileStem(store);
        var fileName = $"{stem}.yaml";
        if (!Present(directory, fileName) && Present(directory, $"{stem}.yml")) fileName = $"{stem}.yml";
        present = Present(directory, fileName);
        if (!present) return null;
        var text = ConfigFileReader.Read(Path.Combine(directory, fileName), fileName, errors);
        if (text is null) return null;
        var root = YamlConfigReader.Read(fileName, text, errors);
        if (root is null) return null;
        VariableSubstitution.Apply(root, "", name => environment.TryGetValue(name, out var value) ? value : null, errors);
        return root;
    }

    /// <summary>Loads the stores from a configuration section with children <c>Postgres</c>, <c>Redis</c>, <c>Mongo</c>.</summary>
    public static PolystoreConfig Load(IConfiguration configuration)
    {
        var errors = new List<ConfigError>();
        var tree = new ConfigurationTree(configuration, errors);
        var sectionPath = (configuration as IConfigurationSection)?.Path ?? "";
        var stores = new Dictionary<string, List<IConfigurationSection>>(StringComparer.Ordinal);
        foreach (var child in configuration.GetChildren())
        {
            var normalized = ConfigBinder.NormalizeKey(child.Key);
            if (StoreNames.All.Contains(normalized))
            {
                if (!stores.TryGetValue(normalized, out var spellings)) stores[normalized] = spellings = [];
                spellings.Add(child);
            }
            // Other keys may be the application's own; only a near miss of a store's name is surely a mistake.
            else if (ConfigBinder.Suggest(normalized, StoreNames.All) is { } store)
            {
                errors.Add(new ConfigError(tree.SourceOf(child), "",
                    $"unknown store section '{child.Key}'; did you mean '{ConfigurationTree.SectionKey(store)}'?"));
            }
        }

        var sources = new Dictionary<string, IReadOnlyDictionary<string, ConfigSource>>();
        var storeSources = new Dictionary<string, ConfigSource>(StringComparer.Ordinal);
        var validation = new ConfigValidator(sources, store => storeSources[store]);
        var postgres = LoadStore<PostgresSettings>(tree, StoreNames.Postgres, stores, errors, sources, storeSources, validation.Validate);
        var mongo = LoadStore<MongoSettings>(tree, StoreNames.Mongo, stores, errors, sources, storeSources, validation.Validate);
        var redis = LoadStore<RedisSettings>(tree, StoreNames.Redis, stores, errors, sources, storeSources, validation.Validate);
        errors.AddRange(validation.Errors);
        if (postgres is null && mongo is null && redis is null && errors.Count == 0)
        {
            var where = sectionPath.Length == 0 ? "the configuration" : $"configuration section '{sectionPath}'";
            var prefix = sectionPath.Length == 0 ? "" : sectionPath + ":";
            errors.Add(new ConfigError(new ConfigSource(null, 0, 0) { ConfigurationKey = sectionPath }, "",
                $"no store is configured: {where} has no Postgres, Redis or Mongo section; set {prefix}Postgres:Connection:Host and the like " +
                $"(in appsettings.json, or as environment variables {prefix.Replace(":", "__", StringComparison.Ordinal)}Postgres__Connection__Host), " +
                "or add a YAML config folder with AddPolystoreYaml"));
        }
        if (errors.Count > 0) throw new ConfigException(Order(errors));
        return new PolystoreConfig(null, postgres, mongo, redis, sources);
    }

    private static T? LoadStore<T>(ConfigurationTree tree, string store, Dictionary<string, List<IConfigurationSection>> stores,
        List<ConfigError> errors, Dictionary<string, IReadOnlyDictionary<string, ConfigSource>> sources,
        Dictionary<string, ConfigSource> storeSources, Action<T> validate) where T : class, new()
    {
        if (!stores.TryGetValue(store, out var spellings)) return null;
        var errorsBefore = errors.Count;
        var node = tree.Read(spellings);
        storeSources[store] = node.Source;
        ConfigMap root;
        switch (node)
        {
            case ConfigMap map:
                root = map;
                break;
            // "Postgres": {} (or an empty YAML file): the store with every default.
            case ConfigScalar { Value: null or "" }:
                root = new ConfigMap(node.Source);
                break;
            default:
                errors.Add(new ConfigError(node.Source, "", $"expected a section of keys (Connection, Pool, ...), got {(node is ConfigList ? "a list" : "a value")}"));
                return null;
        }
        var binder = new ConfigBinder(errors, lenient: true);
        var settings = binder.Bind<T>(root);
        sources[store] = binder.Sources;
        if (errors.Count == errorsBefore) validate(settings);
        return settings;
    }

    // Anything at the path counts, so that a directory or a FIFO named like a config file is reported, not skipped.
    private static bool Present(string directory, string fileName) =>
        ConfigFileReader.Inspect(Path.Combine(directory, fileName)) != ConfigFileReader.Kind.Missing;

    internal static List<ConfigError> Order(List<ConfigError> errors) =>
        errors.OrderBy(e => e.Source.File ?? "~")
            .ThenBy(e => e.Source.Line)
            .ThenBy(e => e.Source.Column)
            .ToList();
}

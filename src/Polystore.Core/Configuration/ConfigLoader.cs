namespace Polystore.Core.Configuration;

/// <summary>Reads the three store files, applies the environment, binds and validates, all or nothing.</summary>
internal static class ConfigLoader
{
    public static PolystoreConfig Load(string directory, IReadOnlyDictionary<string, string> environment)
    {
        var errors = new List<ConfigError>();
        if (!System.IO.Directory.Exists(directory))
        {
            var anyEnvironment = new[] { StoreNames.Postgres, StoreNames.Mongo, StoreNames.Redis }.Any(s => EnvironmentOverrides.Configures(s, environment));
            if (!anyEnvironment) throw new ConfigException($"config folder '{directory}' does not exist; pass --dir, set POLYSTORE_CONFIG_DIR, or run './run up'");
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

    private static T? LoadStore<T>(string directory, string store, IReadOnlyDictionary<string, string> environment,
        List<ConfigError> errors, Dictionary<string, IReadOnlyDictionary<string, ConfigSource>> sources, Action<T> validate) where T : class, new()
    {
        var errorsBefore = errors.Count;
        var stem = StoreNames.ConfigFileStem(store);
        // postgresql.yaml, else postgresql.yml.
        var fileName = $"{stem}.yaml";
        if (!Present(directory, fileName) && Present(directory, $"{stem}.yml")) fileName = $"{stem}.yml";
        var path = Path.Combine(directory, fileName);
        ConfigMap? root;
        if (Present(directory, fileName))
        {
            var text = ConfigFileReader.Read(path, fileName, errors);
            if (text is null) return null;
            root = YamlConfigReader.Read(fileName, text, errors);
            if (root is null) return null;
            VariableSubstitution.Apply(root, "", name => environment.TryGetValue(name, out var value) ? value : null, errors);
        }
        else if (EnvironmentOverrides.Configures(store, environment)) root = new ConfigMap(ConfigSource.Default);
        else return null;

        EnvironmentOverrides.ApplyUrl(store, root, environment, errors);
        EnvironmentOverrides.ApplyKeys(store, root, environment, errors);
        var binder = new ConfigBinder(errors);
        var settings = binder.Bind<T>(root);
        sources[store] = binder.Sources;
        if (errors.Count == errorsBefore) validate(settings);
        return settings;
    }

    // Anything at the path counts, so that a directory or a FIFO named like a config file is reported, not skipped.
    private static bool Present(string directory, string fileName) =>
        ConfigFileReader.Inspect(Path.Combine(directory, fileName)) != ConfigFileReader.Kind.Missing;

    private static List<ConfigError> Order(List<ConfigError> errors) =>
        errors.OrderBy(e => e.Source.File ?? "~")
            .ThenBy(e => e.Source.Line)
            .ThenBy(e => e.Source.Column)
            .ToList();
}

using System.Collections;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Polystore.Core.Configuration;

/// <summary>
/// The one spelling of each store's name: in finding ids and <see cref="Diagnostics.Finding.Store"/>, health-check
/// names, CLI nouns, environment variables (<c>POLYSTORE_POSTGRES_URL</c>, <c>POLYSTORE__POSTGRES__POOL__MAX_SIZE</c>)
/// and JSON output. Only the config files keep the server products' own names (<see cref="ConfigFileStem"/>).
/// </summary>
public static class StoreNames
{
    /// <summary>PostgreSQL.</summary>
    public const string Postgres = "postgres";
    /// <summary>MongoDB.</summary>
    public const string Mongo = "mongo";
    /// <summary>Redis.</summary>
    public const string Redis = "redis";

    /// <summary>Every store, in the order output lists them.</summary>
    public static IReadOnlyList<string> All { get; } = [Postgres, Redis, Mongo];

    /// <summary>The stem of the store's config file: <c>postgresql</c>, <c>mongodb</c> or <c>redis</c> (then <c>.yaml</c>).</summary>
    public static string ConfigFileStem(string store) => store switch
    {
        Postgres => "postgresql",
        Mongo => "mongodb",
        Redis => "redis",
        _ => throw new ArgumentOutOfRangeException(nameof(store), store, "unknown store"),
    };

    /// <summary>The store's config file name: <c>postgresql.yaml</c>, <c>mongodb.yaml</c> or <c>redis.yaml</c>.</summary>
    public static string ConfigFile(string store) => ConfigFileStem(store) + ".yaml";

    /// <summary>The one environment variable that configures the store by URL: <c>POLYSTORE_POSTGRES_URL</c> and so on.</summary>
    public static string UrlVariable(string store) => $"POLYSTORE_{store.ToUpperInvariant()}_URL";
}

/// <summary>One line of the effective configuration, with secrets already hidden.</summary>
/// <param name="Store">postgres, mongo or redis (<see cref="StoreNames"/>).</param>
/// <param name="Key">Dotted key path.</param>
/// <param name="Value">The value as text, secrets masked.</param>
/// <param name="Source">Where the value came from.</param>
public sealed record ConfigEntry(string Store, string Key, string Value, ConfigSource Source);

/// <summary>
/// A loaded and validated configuration, from a config folder or a configuration section. A store whose file (or
/// section) is absent, and which no environment variable configures, is null: that store is simply not used.
/// </summary>
public sealed class PolystoreConfig
{
    private readonly Dictionary<string, IReadOnlyDictionary<string, ConfigSource>> _sources;

    internal PolystoreConfig(string? directory, PostgresSettings? postgres, MongoSettings? mongo, RedisSettings? redis,
        Dictionary<string, IReadOnlyDictionary<string, ConfigSource>> sources)
    {
        Directory = directory;
        Postgres = postgres;
        Mongo = mongo;
        Redis = redis;
        _sources = sources;
    }

    /// <summary>The folder the files were read from, if any (null when loaded from a configuration section).</summary>
    public string? Directory { get; }
    /// <summary>postgresql.yaml, or null when PostgreSQL is not configured.</summary>
    public PostgresSettings? Postgres { get; }
    /// <summary>mongodb.yaml, or null when MongoDB is not configured.</summary>
    public MongoSettings? Mongo { get; }
    /// <summary>redis.yaml, or null when Redis is not configured.</summary>
    public RedisSettings? Redis { get; }

    /// <summary>Loads <paramref name="directory"/>; throws <see cref="ConfigException"/> listing every problem.</summary>
    /// <param name="directory">The config folder.</param>
    /// <param name="environment">Variables for ${VAR} and overrides; the process environment when null.</param>
    public static PolystoreConfig Load(string directory, IReadOnlyDictionary<string, string>? environment = null) =>
        ConfigLoader.Load(directory, environment ?? ProcessEnvironment());

    /// <summary>
    /// Loads the stores from a configuration section (usually <c>Polystore</c>) whose children <c>Postgres</c>,
    /// <c>Redis</c> and <c>Mongo</c> hold the same keys as the YAML files, from any provider: appsettings.json,
    /// environment variables (<c>Polystore__Postgres__Pool__MaxSize</c>), a YAML folder added with
    /// <see cref="PolystoreConfigurationBuilderExtensions.AddPolystoreYaml(IConfigurationBuilder, string, bool)"/>. Keys
    /// match in either spelling (<c>MaxSize</c> or <c>max_size</c>); lists are indexed children (<c>0</c>, <c>1</c>,
    /// ...). Values are bound and validated exactly as the folder's are; throws <see cref="ConfigException"/> listing
    /// every problem, each naming its configuration key and the provider that supplied it (a YAML value its file,
    /// line and column). A store without a section is null.
    /// </summary>
    /// <param name="section">The section holding the stores; a section of an <see cref="IConfigurationRoot"/> names each value's provider.</param>
    public static PolystoreConfig Load(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        return ConfigLoader.Load(section);
    }

    /// <summary>Whether <paramref name="store"/> (<see cref="StoreNames"/>) is configured.</summary>
    internal bool Configures(string store) => store switch
    {
        StoreNames.Postgres => Postgres is not null,
        StoreNames.Redis => Redis is not null,
        StoreNames.Mongo => Mongo is not null,
        _ => false,
    };

    /// <summary>Where a key's value came from (file position, environment variable, or default).</summary>
    public ConfigSource SourceOf(string store, string key) =>
        _sources.TryGetValue(store, out var map) && map.TryGetValue(key, out var source) ? source : ConfigSource.Default;

    /// <summary>Every effective setting, secrets masked, for printing.</summary>
    public IReadOnlyList<ConfigEntry> Describe()
    {
        var entries = new List<ConfigEntry>();
        if (Postgres is not null) Flatten(StoreNames.Postgres, Postgres, "", secret: false, entries);
        if (Mongo is not null) Flatten(StoreNames.Mongo, Mongo, "", secret: false, entries);
        if (Redis is not null) Flatten(StoreNames.Redis, Redis, "", secret: false, entries);
        return entries;
    }

    /// <summary>
    /// Every secret value the configuration holds (passwords, and each secret URL with the password inside it), for
    /// masking in anything printed or logged. Never print the result.
    /// </summary>
    public IReadOnlyList<string> Secrets()
    {
        var secrets = new List<string>();
        foreach (var settings in new object?[] { Postgres, Mongo, Redis }) CollectSecrets(settings, secret: false, secrets);
        return secrets;
    }

    private static void CollectSecrets(object? value, bool secret, List<string> secrets)
    {
        switch (value)
        {
            case null or bool or Enum or IFormattable:
                return;
            case string text:
                if (!secret || text.Length == 0) return;
                secrets.Add(text);
                if (Redactor.UrlPassword(text) is { } password)
                {
                    secrets.Add(password);
                    if (Uri.UnescapeDataString(password) is var decoded && decoded != password) secrets.Add(decoded);
                }
                return;
            case IList list:
                foreach (var item in list) CollectSecrets(item, secret, secrets);
                return;
        }
        foreach (var property in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            CollectSecrets(property.GetValue(value), secret || property.GetCustomAttribute<SecretAttribute>() is not null, secrets);
    }

    private void Flatten(string store, object? value, string path, bool secret, List<ConfigEntry> entries)
    {
        switch (value)
        {
            case null:
                entries.Add(new(store, path, "(unset)", SourceOf(store, path)));
                return;
            case string text:
                entries.Add(new(store, path, secret ? RedactSecret(text) : text, SourceOf(store, path)));
                return;
            case bool flag:
                entries.Add(new(store, path, flag ? "true" : "false", SourceOf(store, path)));
                return;
            case Enum:
                entries.Add(new(store, path, ConfigBinder.EnumName(value), SourceOf(store, path)));
                return;
            case IFormattable number:
                entries.Add(new(store, path, number.ToString(null, CultureInfo.InvariantCulture), SourceOf(store, path)));
                return;
            case IList list:
                if (list.Count == 0) entries.Add(new(store, path, "[]", SourceOf(store, path)));
                for (var i = 0; i < list.Count; i++) Flatten(store, list[i], $"{path}[{i}]", secret, entries);
                return;
        }
        foreach (var property in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            Flatten(store, property.GetValue(value), ConfigBinder.Join(path, ConfigBinder.KeyOf(property)),
                secret || property.GetCustomAttribute<SecretAttribute>() is not null, entries);
    }

    // A secret URL keeps its host visible: only the credentials are hidden (by structure: see MaskSecretUrl).
    private static string RedactSecret(string text) => text.Contains("://", StringComparison.Ordinal) ? Redactor.MaskSecretUrl(text) : Redactor.Mask;

    internal static IReadOnlyDictionary<string, string> ProcessEnvironment()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
            if (entry.Key is string key && entry.Value is string value) result[key] = value;
        return result;
    }
}

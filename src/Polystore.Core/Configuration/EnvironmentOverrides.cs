namespace Polystore.Core.Configuration;

/// <summary>
/// Applies configuration from the environment on top of the files, in this order:
/// the one-variable URL per store (<c>POLYSTORE_POSTGRES_URL</c>, <c>POLYSTORE_MONGO_URL</c>,
/// <c>POLYSTORE_REDIS_URL</c>), then any single key (<c>POLYSTORE__POSTGRES__POOL__MAX_SIZE=80</c>).
/// </summary>
internal static class EnvironmentOverrides
{
    public const string KeyPrefix = "POLYSTORE__";

    public static void ApplyUrl(string store, ConfigMap root, IReadOnlyDictionary<string, string> environment, List<ConfigError> errors)
    {
        var variable = StoreNames.UrlVariable(store);
        if (!environment.TryGetValue(variable, out var url) || string.IsNullOrWhiteSpace(url)) return;
        var source = ConfigSource.FromEnvironment(variable);
        var connection = Section(root, "connection", source);
        switch (store)
        {
            case StoreNames.Postgres:
                ApplyPostgresUrl(url, connection, source, variable, errors);
                break;
            case StoreNames.Mongo:
                Set(connection, "uri", url, source);
                // The database is the URI's path, as in every MongoDB driver (System.Uri cannot parse a host list).
                if (MongoDatabaseOf(url) is { Length: > 0 } database) Set(connection, "database", database, source);
                break;
            default:
                Set(connection, "url", url, source);
                break;
        }
    }

    private static string? MongoDatabaseOf(string url)
    {
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0) return null;
        var slash = url.IndexOf('/', scheme + 3);
        if (slash < 0) return null;
        var query = url.IndexOf('?', slash);
        return Uri.UnescapeDataString(query < 0 ? url[(slash + 1)..] : url[(slash + 1)..query]);
    }

    private static void ApplyPostgresUrl(string url, ConfigMap connection, ConfigSource source, string variable, List<ConfigError> errors)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("postgres" or "postgresql"))
        {
            // Never echo the URL: it usually carries a password.
            errors.Add(new ConfigError(source, "", $"{variable} must look like postgresql://user:password@host:port/database; got {Redactor.MaskSecretUrl(url)}"));
            return;
        }
        Set(connection, "host", uri.Host, source);
        if (!uri.IsDefaultPort)
        {
            if (uri.Port < 1) errors.Add(new ConfigError(source, "", $"{variable}: the port must be between 1 and 65535"));
            else Set(connection, "port", uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), source);
        }
        if (uri.AbsolutePath.Trim('/') is { Length: > 0 } database) Set(connection, "database", Uri.UnescapeDataString(database), source);
        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            Set(connection, "user", Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]), source);
            if (colon >= 0) Set(connection, "password", Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]), source);
        }
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
            var value = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
            switch (key)
            {
                // libpq's URI parameters of the same names.
                case "sslmode" or "sslrootcert" or "sslcert" or "sslkey" or "application_name": Set(connection, key, value, source); break;
                default:
                    errors.Add(new ConfigError(source, "", $"{variable}: query parameter '{key}' is not supported; use sslmode, sslrootcert, sslcert, sslkey or application_name, or set the key in postgresql.yaml"));
                    break;
            }
        }
    }

    /// <summary>Applies every <c>POLYSTORE__STORE__SECTION__KEY</c> variable for <paramref name="store"/>.</summary>
    public static void ApplyKeys(string store, ConfigMap root, IReadOnlyDictionary<string, string> environment, List<ConfigError> errors)
    {
        var storePrefix = $"{KeyPrefix}{store.ToUpperInvariant()}__";
        foreach (var (variable, value) in environment.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (!variable.StartsWith(storePrefix, StringComparison.OrdinalIgnoreCase)) continue;
            var path = variable[storePrefix.Length..].ToLowerInvariant().Split("__");
            var source = ConfigSource.FromEnvironment(variable);
            if (path.Any(p => p.Length == 0))
            {
                errors.Add(new ConfigError(source, "", $"{variable} is not of the form {KeyPrefix}STORE__SECTION__KEY"));
                continue;
            }
            var map = root;
            foreach (var section in path[..^1]) map = Section(map, section, source);
            Set(map, path[^1], value, source);
        }
    }

    /// <summary>True when any environment variable configures <paramref name="store"/> without a file.</summary>
    public static bool Configures(string store, IReadOnlyDictionary<string, string> environment) =>
        environment.Keys.Any(k =>
            k.StartsWith($"{KeyPrefix}{store.ToUpperInvariant()}__", StringComparison.OrdinalIgnoreCase)
            || k == StoreNames.UrlVariable(store) && !string.IsNullOrWhiteSpace(environment[k]));

    private static ConfigMap Section(ConfigMap parent, string key, ConfigSource source)
    {
        if (parent.Get(key) is ConfigMap existing) return existing;
        var created = new ConfigMap(source);
        parent.Set(key, created);
        return created;
    }

    // Marked as from a variable, so no error ever quotes it (it may be a secret).
    private static void Set(ConfigMap map, string key, string value, ConfigSource source) =>
        map.Set(key, new ConfigScalar(value, source) { FromVariable = true });
}

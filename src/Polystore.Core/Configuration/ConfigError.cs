namespace Polystore.Core.Configuration;

/// <summary>
/// Where a configuration value came from: a file position, an environment variable, a key of an
/// <c>IConfiguration</c> and the provider that supplied it, or a default.
/// </summary>
/// <param name="File">The file name (for example <c>postgresql.yaml</c> or <c>appsettings.json</c>), or null when the value did not come from a file.</param>
/// <param name="Line">The 1-based line in <paramref name="File"/>, or 0.</param>
/// <param name="Column">The 1-based column in <paramref name="File"/>, or 0.</param>
/// <param name="EnvironmentVariable">The environment variable that set or overrode the value, if any.</param>
public sealed record ConfigSource(string? File, int Line, int Column, string? EnvironmentVariable = null)
{
    /// <summary>A value that nobody set: the built-in default.</summary>
    public static readonly ConfigSource Default = new(null, 0, 0);

    /// <summary>A value set by an environment variable.</summary>
    public static ConfigSource FromEnvironment(string variable) => new(null, 0, 0, variable);

    /// <summary>
    /// The configuration key that held the value (for example <c>Polystore:Postgres:Pool:MaxSize</c>) when it was
    /// loaded through <see cref="PolystoreConfig.Load(Microsoft.Extensions.Configuration.IConfiguration)"/>; else null.
    /// </summary>
    public string? ConfigurationKey { get; init; }

    /// <summary>
    /// The configuration provider that supplied the value, in words (<c>appsettings.json</c>,
    /// <c>environment variable Polystore__Postgres__Pool__MaxSize</c>, ...); null when unknown or not loaded through
    /// a configuration.
    /// </summary>
    public string? Provider { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        ConfigurationKey is not null && Line == 0 ? (Provider is null ? ConfigurationKey : $"{ConfigurationKey} ({Provider})")
        : EnvironmentVariable is not null ? $"environment {EnvironmentVariable}"
        : File is null ? "default"
        : $"{File}:{Line}:{Column}";
}

/// <summary>One problem found while loading configuration, with the place it was found.</summary>
/// <param name="Source">The file position, environment variable or configuration key and provider.</param>
/// <param name="KeyPath">The dotted key path inside the store's settings, for example <c>pool.max_size</c>, whatever the source spelled it.</param>
/// <param name="Message">What is wrong, in words a user can act on.</param>
public sealed record ConfigError(ConfigSource Source, string KeyPath, string Message)
{
    /// <inheritdoc />
    public override string ToString()
    {
        // A configuration key names the value better than a file without a position (appsettings.json has no lines here).
        var where = Source.ConfigurationKey is not null && Source.Line == 0 ? Source.ToString()
            : Source.File is not null ? $"{Source.File}:{Source.Line}:{Source.Column}"
            : Source.EnvironmentVariable is not null ? $"environment {Source.EnvironmentVariable}" : "(default)";
        return KeyPath.Length == 0 ? $"{where}: {Message}" : $"{where}: {KeyPath}: {Message}";
    }
}

/// <summary>Thrown when a configuration (a folder or a configuration section) does not load; lists every problem at once.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception from the full list of problems.</summary>
    public ConfigException(IReadOnlyList<ConfigError> errors)
        : base(BuildMessage(errors)) => Errors = errors;

    /// <summary>Creates an exception with a single message.</summary>
    public ConfigException(string message) : base(message) => Errors = [new ConfigError(ConfigSource.Default, "", message)];

    /// <summary>Creates an exception with a single message and an inner exception.</summary>
    public ConfigException(string message, Exception innerException) : base(message, innerException) =>
        Errors = [new ConfigError(ConfigSource.Default, "", message)];

    /// <summary>Creates an exception with no details.</summary>
    public ConfigException() : this("Invalid configuration.") { }

    /// <summary>Every problem found, in file order.</summary>
    public IReadOnlyList<ConfigError> Errors { get; }

    private static string BuildMessage(IReadOnlyList<ConfigError> errors) =>
        errors.Count == 1
            ? $"Invalid configuration: {errors[0]}"
            : $"Invalid configuration ({errors.Count} problems):{Environment.NewLine}  " +
              string.Join(Environment.NewLine + "  ", errors);
}

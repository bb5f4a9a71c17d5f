using Polystore.Core.Configuration;

// Beside AddJsonFile and AddEnvironmentVariables: found without a using line.
namespace Microsoft.Extensions.Configuration;

/// <summary>Adds a Polystore YAML config folder to an application's configuration.</summary>
public static class PolystoreConfigurationBuilderExtensions
{
    /// <summary>
    /// Adds the YAML config folder (postgresql.yaml, redis.yaml, mongodb.yaml) as a configuration source: its values
    /// appear under <c>Polystore:Postgres</c>, <c>Polystore:Redis</c> and <c>Polystore:Mongo</c>, for
    /// <see cref="PolystoreConfig.Load(IConfiguration)"/> on the <c>Polystore</c> section. The files are read with the
    /// same limits and <c>${VAR}</c> expansion as <see cref="PolystoreConfig.Load(string, IReadOnlyDictionary{string, string})"/>;
    /// problems in them throw <see cref="ConfigException"/> when the configuration is built, and a bad value found
    /// later is still reported with its file, line and column. Sources added after this one override its values.
    /// </summary>
    /// <param name="builder">The configuration builder.</param>
    /// <param name="directory">The folder; a relative path is resolved against the builder's base path (the host's content root), not the current folder.</param>
    /// <param name="optional">When true, a folder that does not exist adds nothing instead of throwing.</param>
    /// <returns>The builder.</returns>
    public static IConfigurationBuilder AddPolystoreYaml(this IConfigurationBuilder builder, string directory, bool optional = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        return builder.Add(new PolystoreYamlConfigurationSource(directory, optional, environment: null));
    }

    /// <summary>As the public overload, with <paramref name="environment"/> for <c>${VAR}</c> instead of the process's.</summary>
    internal static IConfigurationBuilder AddPolystoreYaml(this IConfigurationBuilder builder, string directory, bool optional, IReadOnlyDictionary<string, string> environment)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        return builder.Add(new PolystoreYamlConfigurationSource(directory, optional, environment));
    }
}

using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.FileProviders;

namespace Polystore.Core.Configuration;

/// <summary>The source behind <see cref="PolystoreConfigurationBuilderExtensions.AddPolystoreYaml(IConfigurationBuilder, string, bool)"/>.</summary>
internal sealed class PolystoreYamlConfigurationSource(string directory, bool optional, IReadOnlyDictionary<string, string>? environment)
    : IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) =>
        new PolystoreYamlConfigurationProvider(Resolve(directory, builder), optional, environment);

    // As appsettings.json is found: relative to the builder's base path (the host's content root), not the current folder.
    private static string Resolve(string directory, IConfigurationBuilder builder)
    {
        if (Path.IsPathFullyQualified(directory)) return Path.GetFullPath(directory);
        var files = builder.GetFileProvider();
        if (files is PhysicalFileProvider physical) return Path.GetFullPath(Path.Combine(physical.Root, directory));
        if (files.GetFileInfo(directory).PhysicalPath is { Length: > 0 } path) return Path.GetFullPath(path);
        throw new ConfigException(
            $"config folder '{directory}' is relative, and the configuration's file provider ({files.GetType().Name}) has no folder on disk " +
            "to resolve it against; pass a full path or call SetBasePath first");
    }
}

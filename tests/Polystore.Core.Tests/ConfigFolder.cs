namespace Polystore.Core.Tests;

/// <summary>A throwaway config folder on disk.</summary>
internal sealed class ConfigFolder : IDisposable
{
    public ConfigFolder(params (string File, string Yaml)[] files)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "polystore-config-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        foreach (var (file, yaml) in files) File.WriteAllText(System.IO.Path.Combine(Path, file), yaml.ReplaceLineEndings("\n"));
    }

    public string Path { get; }

    public static string RepoFile(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Polystore.slnx"))) return System.IO.Path.Combine(dir.FullName, relative);
        throw new InvalidOperationException("repository root not found");
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

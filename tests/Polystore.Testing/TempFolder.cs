namespace Polystore.Testing;

/// <summary>
/// A fresh folder under the system's temp folder, deleted with its contents on dispose: the configs tests write there
/// hold passwords, which must not outlive the test.
/// </summary>
public sealed class TempFolder : IDisposable
{
    private TempFolder(string fullName) => FullName = fullName;

    /// <summary>The folder's absolute path.</summary>
    public string FullName { get; }

    /// <summary>Creates a folder whose name starts with <paramref name="prefix"/>.</summary>
    public static TempFolder Create(string prefix) => new(Directory.CreateTempSubdirectory(prefix).FullName);

    /// <inheritdoc />
    public void Dispose()
    {
        try { Directory.Delete(FullName, recursive: true); }
        catch (DirectoryNotFoundException) { }
        catch (IOException) { } // a process the test started may still hold a file open; the OS cleans up later
    }
}

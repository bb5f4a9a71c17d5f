using System.Runtime.InteropServices;
using System.Text;

namespace Polystore.Core.Configuration;

/// <summary>
/// Reads one config file's text, refusing what a real config never is and an attacker or a careless operator
/// easily makes it: anything but a regular file (a FIFO would block forever, <c>/dev/zero</c> never ends), a file
/// larger than <see cref="MaxBytes"/>, text that is not UTF-8. Each refusal is a <see cref="ConfigError"/> naming the
/// file; nothing is read past the limit.
/// </summary>
internal static partial class ConfigFileReader
{
    /// <summary>The largest config file read: real ones are a few kilobytes.</summary>
    public const int MaxBytes = 1024 * 1024;

    /// <summary>What is at a path, as far as reading a config file is concerned.</summary>
    public enum Kind { Missing, RegularFile, Directory, Special, DanglingLink, LinkLoop, Unreadable }

    public static Kind Inspect(string path)
    {
        if (Directory.Exists(path)) return Kind.Directory;
        var info = new FileInfo(path);
        if (!info.Exists && info.LinkTarget is null) return Kind.Missing;
        if (OperatingSystem.IsLinux()) return InspectLinux(path);
        if (info.LinkTarget is not null)
        {
            try
            {
                if (info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true }) return Kind.DanglingLink;
            }
            catch (IOException) { return Kind.LinkLoop; }
        }
        return Kind.RegularFile;
    }

    /// <summary>The file's text, or null after adding an error naming <paramref name="fileName"/>.</summary>
    public static string? Read(string path, string fileName, List<ConfigError> errors)
    {
        var at = new ConfigSource(fileName, 0, 0);
        switch (Inspect(path))
        {
            case Kind.Directory:
                errors.Add(new ConfigError(at, "", $"{fileName} is a directory, not a file"));
                return null;
            case Kind.Special:
                errors.Add(new ConfigError(at, "", $"{fileName} is not a regular file (a FIFO, socket or device); only regular files are read"));
                return null;
            case Kind.DanglingLink:
                errors.Add(new ConfigError(at, "", $"{fileName} is a symbolic link to a file that does not exist"));
                return null;
            case Kind.LinkLoop:
                errors.Add(new ConfigError(at, "", $"{fileName} is a symbolic link that loops (too many levels of links)"));
                return null;
            case Kind.Unreadable:
                errors.Add(new ConfigError(at, "", $"{fileName} cannot be read: permission denied"));
                return null;
            case Kind.Missing:
                return null;
        }
        byte[] bytes;
        try
        {
            // Read at most one byte past the limit, whatever the file claims its length is (it may grow meanwhile).
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            using var content = new MemoryStream();
            var chunk = new byte[64 * 1024];
            int read;
            while (content.Length <= MaxBytes && (read = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, MaxBytes + 1 - content.Length))) > 0)
                content.Write(chunk, 0, read);
            if (content.Length > MaxBytes)
            {
                errors.Add(new ConfigError(at, "", $"{fileName} is larger than {MaxBytes / 1024} KiB, the most a config file may be"));
                return null;
            }
            bytes = content.ToArray();
        }
        catch (UnauthorizedAccessException)
        {
            errors.Add(new ConfigError(at, "", $"{fileName} cannot be read: permission denied"));
            return null;
        }
        catch (IOException e)
        {
            errors.Add(new ConfigError(at, "", $"{fileName} cannot be read: {e.Message}"));
            return null;
        }
        try
        {
            var text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
            return text.Length > 0 && text[0] == '\uFEFF' ? text[1..] : text;
        }
        catch (DecoderFallbackException e)
        {
            errors.Add(new ConfigError(at, "", $"{fileName} is not UTF-8 text (invalid byte at offset {e.Index}); save it as UTF-8"));
            return null;
        }
    }

    // statx(2) is the one call that says "regular file" without opening the path (opening a FIFO blocks), and its
    // struct has one layout on every architecture.
    private static Kind InspectLinux(string path)
    {
        const int AtFdCwd = -100;
        const uint StatxType = 0x1;
        const int Enoent = 2, Eacces = 13, Eloop = 40;
        var buffer = new byte[256];
        if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
        {
            return Marshal.GetLastPInvokeError() switch
            {
                Enoent => new FileInfo(path).LinkTarget is not null ? Kind.DanglingLink : Kind.Missing,
                Eloop => Kind.LinkLoop,
                Eacces => Kind.Unreadable,
                _ => Kind.Unreadable,
            };
        }
        var mode = BitConverter.ToUInt16(buffer, 28);
        return (mode & 0xF000) switch
        {
            0x8000 => Kind.RegularFile,
            0x4000 => Kind.Directory,
            _ => Kind.Special,
        };
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);
}

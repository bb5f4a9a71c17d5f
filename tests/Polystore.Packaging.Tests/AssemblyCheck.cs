using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Polystore.Packaging.Tests;

/// <summary>What a shipped assembly and its symbols say about how they were built.</summary>
internal static class AssemblyCheck
{
    private static readonly Guid EmbeddedSource = new("0E8A571B-6926-466E-B4AD-8AB04611F5FE");

    /// <summary>The assembly's AssemblyInformationalVersion, or null.</summary>
    public static string? InformationalVersion(byte[] assembly)
    {
        using var pe = new PEReader(new MemoryStream(assembly));
        var reader = pe.GetMetadataReader();
        foreach (var handle in reader.GetAssemblyDefinition().GetCustomAttributes())
        {
            var attribute = reader.GetCustomAttribute(handle);
            if (attribute.Constructor.Kind != HandleKind.MemberReference) continue;
            var parent = reader.GetMemberReference((MemberReferenceHandle)attribute.Constructor).Parent;
            if (parent.Kind != HandleKind.TypeReference || reader.GetString(reader.GetTypeReference((TypeReferenceHandle)parent).Name) != "AssemblyInformationalVersionAttribute") continue;
            var blob = reader.GetBlobReader(attribute.Value);
            blob.ReadUInt16(); // prolog
            return blob.ReadSerializedString();
        }
        return null;
    }

    /// <summary>Whether the assembly defines the type <paramref name="ns"/>.<paramref name="name"/>.</summary>
    public static bool DefinesType(byte[] assembly, string ns, string name)
    {
        using var pe = new PEReader(new MemoryStream(assembly));
        var reader = pe.GetMetadataReader();
        return reader.TypeDefinitions.Select(reader.GetTypeDefinition)
            .Any(t => reader.GetString(t.Namespace) == ns && reader.GetString(t.Name) == name);
    }

    /// <summary>
    /// The problems with an assembly and its portable PDB: not built deterministically, a PDB that is not the
    /// assembly's, a source or PDB path that names the build machine's folders, a source not embedded.
    /// </summary>
    public static IReadOnlyList<string> SymbolProblems(string name, byte[] assembly, byte[] pdb)
    {
        var problems = new List<string>();
        using var pe = new PEReader(new MemoryStream(assembly));
        var debug = pe.ReadDebugDirectory();
        if (!debug.Any(e => e.Type == DebugDirectoryEntryType.Reproducible)) problems.Add($"{name}: not built deterministically (no Reproducible debug entry)");
        var codeView = debug.Where(e => e.Type == DebugDirectoryEntryType.CodeView).Select(pe.ReadCodeViewDebugDirectoryData).ToList();
        if (codeView.Count != 1) return [.. problems, $"{name}: {codeView.Count} CodeView entries"];
        if (!codeView[0].Path.StartsWith("/_/", StringComparison.Ordinal)) problems.Add($"{name}: PDB path {codeView[0].Path} is the build machine's");

        using var provider = MetadataReaderProvider.FromPortablePdbStream(new MemoryStream(pdb));
        var reader = provider.GetMetadataReader();
        if (new BlobContentId(reader.DebugMetadataHeader!.Id).Guid != codeView[0].Guid) problems.Add($"{name}: the PDB's id is not the assembly's");
        var embedded = reader.CustomDebugInformation.Select(reader.GetCustomDebugInformation)
            .Where(c => reader.GetGuid(c.Kind) == EmbeddedSource && c.Parent.Kind == HandleKind.Document)
            .Select(c => (DocumentHandle)c.Parent).ToHashSet();
        var documents = 0;
        foreach (var handle in reader.Documents)
        {
            documents++;
            var path = reader.GetString(reader.GetDocument(handle).Name);
            if (!path.StartsWith("/_/", StringComparison.Ordinal)) problems.Add($"{name}: source path {path} is the build machine's");
            if (!embedded.Contains(handle)) problems.Add($"{name}: {path} is not embedded in the PDB");
        }
        if (documents == 0) problems.Add($"{name}: the PDB names no source");
        return problems;
    }
}

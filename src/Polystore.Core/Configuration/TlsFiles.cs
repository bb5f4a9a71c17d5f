using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Polystore.Core.Configuration;

/// <summary>
/// Reads the PEM files of a TLS setting (a CA, a client certificate and its key) for the validator and the drivers alike,
/// so a file the validator accepts is the file the connection uses. Every problem is said in words and never quotes the
/// file's contents (a key file's would be the key).
/// </summary>
internal static class TlsFiles
{
    /// <summary>
    /// The trusted authorities and the client certificate of a store's TLS keys (<paramref name="keys"/> names them:
    /// redis.yaml's <c>tls.*</c>, postgresql.yaml's <c>connection.ssl*</c>); each file that is missing, unreadable or
    /// not what it should be adds a problem naming its key and path. Unset keys load nothing.
    /// </summary>
    public static (X509Certificate2Collection? Authorities, X509Certificate2? ClientCertificate) Load(
        TlsKeyNames keys, string? caCertificate, string? clientCertificate, string? clientKey, List<(string Key, string Message)> problems)
    {
        X509Certificate2Collection? authorities = null;
        X509Certificate2? client = null;
        if (caCertificate is not null)
        {
            if (string.IsNullOrWhiteSpace(caCertificate)) problems.Add((keys.CaCertificate, "must not be empty; remove the key to trust the system's store"));
            else if ((authorities = Authorities(caCertificate, out var problem)) is null) problems.Add((keys.CaCertificate, $"'{caCertificate}' {problem}"));
        }
        if (clientCertificate is null)
        {
            if (clientKey is not null) problems.Add((keys.ClientKey, $"is set without {keys.ClientCertificate}; name the certificate it belongs to"));
        }
        else if (string.IsNullOrWhiteSpace(clientCertificate)) problems.Add((keys.ClientCertificate, "must not be empty; remove the key to present no client certificate"));
        else if (clientKey is not null && string.IsNullOrWhiteSpace(clientKey)) problems.Add((keys.ClientKey, $"must not be empty; remove the key when the key is in {keys.ClientCertificate}'s file"));
        else if ((client = ClientCertificate(keys, clientCertificate, clientKey, out var problem, out var keyProblem)) is null)
        {
            if (keyProblem && clientKey is not null) problems.Add((keys.ClientKey, $"'{clientKey}' {problem}"));
            else problems.Add((keys.ClientCertificate, $"'{clientCertificate}' {problem}"));
        }
        return (authorities, client);
    }

    /// <summary>The certificates of a PEM file of trusted authorities, or null and why not.</summary>
    public static X509Certificate2Collection? Authorities(string path, out string? problem)
    {
        if (Read(path, out problem) is not { } text) return null;
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(text);
        }
        catch (CryptographicException)
        {
            problem = "holds a malformed PEM certificate (a -----BEGIN CERTIFICATE----- block that does not decode)";
            return null;
        }
        if (certificates.Count == 0)
        {
            problem = "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
            return null;
        }
        return certificates;
    }

    /// <summary>
    /// The client certificate of <paramref name="certificatePath"/> with the private key of <paramref name="keyPath"/>
    /// (null: the key is in the certificate's file), or null with the problem; <paramref name="keyProblem"/> says whether
    /// it is the key's (else the certificate's).
    /// </summary>
    public static X509Certificate2? ClientCertificate(TlsKeyNames keys, string certificatePath, string? keyPath, out string? problem, out bool keyProblem)
    {
        keyProblem = false;
        if (Read(certificatePath, out problem) is not { } certificateText) return null;
        if (!Contains(certificateText, "CERTIFICATE"))
        {
            problem = "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
            return null;
        }
        var keyText = certificateText;
        if (keyPath is not null)
        {
            keyProblem = true;
            if (Read(keyPath, out problem) is not { } text) return null;
            keyText = text;
        }
        keyProblem = true;
        if (Contains(keyText, "ENCRYPTED PRIVATE KEY") || keyText.Contains("Proc-Type: 4,ENCRYPTED", StringComparison.Ordinal))
        {
            problem = "is an encrypted private key; give the key unencrypted (openssl pkey -in KEY -out KEY.pem) and protect the file by its permissions";
            return null;
        }
        if (!Contains(keyText, "PRIVATE KEY") && !Contains(keyText, "RSA PRIVATE KEY") && !Contains(keyText, "EC PRIVATE KEY"))
        {
            problem = keyPath is null
                ? $"holds no PEM private key (-----BEGIN PRIVATE KEY-----); put the key there or name its file in {keys.ClientKey}"
                : "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)";
            return null;
        }
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPem(certificateText, keyText);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // The driver's message may describe the key; this one never does.
            problem = keyPath is null
                ? "holds a private key that does not decode or does not belong to its certificate"
                : $"holds a private key that does not decode or does not belong to the certificate of {keys.ClientCertificate}";
            return null;
        }
        keyProblem = false;
        if (OperatingSystem.IsWindows())
        {
            // Schannel presents only a certificate whose key is in a key store, not an ephemeral one read from PEM.
            using (certificate) return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
        }
        return certificate;
    }

    private static bool Contains(string text, string label)
    {
        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual(label)) return true;
            rest = rest[fields.Location.End..];
        }
        return false;
    }

    // Through the config files' hardened reader: a regular file only (a FIFO would block), at most 1 MiB, UTF-8.
    private static string? Read(string path, out string? problem)
    {
        problem = ConfigFileReader.Inspect(path) switch
        {
            ConfigFileReader.Kind.Missing => "does not exist",
            ConfigFileReader.Kind.Directory => "is a folder, not a PEM file",
            ConfigFileReader.Kind.Special => "is not a regular file (a FIFO, socket or device)",
            ConfigFileReader.Kind.DanglingLink => "is a symbolic link to a file that does not exist",
            ConfigFileReader.Kind.LinkLoop => "is a symbolic link that loops",
            ConfigFileReader.Kind.Unreadable => "cannot be read: permission denied",
            _ => null,
        };
        if (problem is not null) return null;
        var errors = new List<ConfigError>();
        var text = ConfigFileReader.Read(path, "", errors);
        // The reader's message starts with the name given (none): "<name> cannot be read: ...".
        if (errors.Count > 0) problem = errors[0].Message.TrimStart();
        else if (text is null) problem = "does not exist";
        return text;
    }
}

/// <summary>The keys a store's TLS files are set under, as its config file spells them (for messages).</summary>
internal sealed record TlsKeyNames(string CaCertificate, string ClientCertificate, string ClientKey)
{
    /// <summary>redis.yaml's <c>tls:</c> section.</summary>
    public static TlsKeyNames Redis { get; } = new("tls.ca_certificate", "tls.client_certificate", "tls.client_key");

    /// <summary>postgresql.yaml's libpq-named keys under <c>connection:</c>.</summary>
    public static TlsKeyNames Postgres { get; } = new("connection.sslrootcert", "connection.sslcert", "connection.sslkey");
}

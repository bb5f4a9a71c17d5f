namespace Polystore.Core.Diagnostics;

/// <summary>
/// One store's diagnostic checks, in the shape every store shares: the store's name, its checks for
/// <see cref="DiagnosticRunner"/>, and the values to mask in anything the checks report. Disposing it closes
/// the connections the checks opened for themselves.
/// </summary>
public interface IStoreDiagnostics : IAsyncDisposable
{
    /// <summary>The store's name on every finding (<see cref="Configuration.StoreNames"/>).</summary>
    string Store { get; }

    /// <summary>Passwords and URLs to mask in every finding, check error and report.</summary>
    IReadOnlyList<string?> Secrets { get; }

    /// <summary>Every check of this store, ready for <see cref="DiagnosticRunner"/>.</summary>
    IReadOnlyList<DiagnosticCheck> Checks { get; }
}

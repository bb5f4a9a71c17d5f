namespace Polystore.Core.Diagnostics;

/// <summary>
/// One store's part of <see cref="PolystoreDoctor"/> and of its health check: a ping over the application's own
/// client, and its diagnostic checks. Each store package registers one when the store is added to Polystore.
/// </summary>
public interface IStoreDoctor
{
    /// <summary>The store's name (<see cref="Configuration.StoreNames"/>).</summary>
    string Store { get; }

    /// <summary>Pings every endpoint of the store; the first result is the primary. Never throws for a store that is down.</summary>
    Task<IReadOnlyList<StorePing>> PingAsync(CancellationToken cancellationToken = default);

    /// <summary>The store's checks, over connections the result owns (dispose it).</summary>
    IStoreDiagnostics CreateDiagnostics();
}

namespace Polystore.Core.Diagnostics;

/// <summary>The two findings every store can produce before any of its checks runs, spelled the same for all.</summary>
public static class StoreFindings
{
    /// <summary><c>{store}.configured</c> (info): the config names no such store, so none of its checks ran.</summary>
    /// <param name="store">The store's name (<see cref="Configuration.StoreNames"/>).</param>
    /// <param name="configDirectory">The config folder that was read, or null when the config came from elsewhere.</param>
    public static Finding NotConfigured(string store, string? configDirectory)
    {
        var file = Configuration.StoreNames.ConfigFile(store);
        return new Finding(store, $"{store}.configured", Severity.Info,
            $"{store} is not configured: no {store} checks ran",
            FindingText.Evidence(("config_directory", configDirectory ?? "(none)")),
            $"Add {file} to the config folder (or set {Configuration.StoreNames.UrlVariable(store)}) to check it");
    }

    /// <summary><c>{store}.reachable</c> (critical): the store did not answer, so none of its checks could run.</summary>
    /// <param name="store">The store's name.</param>
    /// <param name="ping">The failed round trip (its error already has secrets removed).</param>
    public static Finding Unreachable(string store, StorePing ping)
    {
        ArgumentNullException.ThrowIfNull(ping);
        return new Finding(store, $"{store}.reachable", Severity.Critical,
            $"{store} at {ping.Endpoint} is unreachable: {ping.Error}",
            FindingText.Evidence(("endpoint", ping.Endpoint), ("error", ping.Error ?? "")),
            "Start the server or fix the network or credentials, then run polystore ping; no other check of this store could run");
    }
}

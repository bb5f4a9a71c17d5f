using System.Net;
using System.Net.Sockets;

namespace Polystore.Testing;

/// <summary>Loopback ports for servers a test starts itself, or for a peer that is down.</summary>
public static class LoopbackPort
{
    /// <summary>A port nothing listens on right now (the system picked it free).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

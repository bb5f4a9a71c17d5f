using System.Globalization;
using Microsoft.Extensions.Logging;
using Polystore.Core.Configuration;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// The one place where redis.yaml becomes StackExchange.Redis <see cref="ConfigurationOptions"/>
/// for standalone, cluster and sentinel deployments.
/// </summary>
public static class RedisDriverSettings
{
    /// <summary>
    /// Options for <paramref name="settings"/>. On TLS, <c>tls.ca_certificate</c> and <c>tls.client_certificate</c>
    /// are read here; a file that no longer reads throws <see cref="ConfigException"/> naming its key.
    /// </summary>
    /// <param name="settings">redis.yaml.</param>
    /// <param name="loggerFactory">Where the multiplexer logs its connection events (<see cref="ConfigurationOptions.LoggerFactory"/>); null logs nothing.</param>
    public static ConfigurationOptions Build(RedisSettings settings, ILoggerFactory? loggerFactory = null)
    {
        var url = new Uri(settings.Connection.Url);
        var (urlUser, urlPassword) = UserInfo(url);
        var options = new ConfigurationOptions
        {
            Ssl = url.Scheme == "rediss",
            User = urlUser,
            Password = settings.Connection.Password ?? urlPassword,
            ClientName = settings.Connection.ClientName,
            ConnectTimeout = Milliseconds(settings.Pool.ConnectionTimeout),
            SyncTimeout = Milliseconds(settings.Pool.SocketTimeout),
            AsyncTimeout = Milliseconds(settings.Pool.SocketTimeout),
            // Keep retrying in the background so a restarted server is picked up without a process restart.
            AbortOnConnectFail = false,
            ConnectRetry = 3,
            // Try a lost server again every 0.25 s at first, then at most every 2 s: a restarted server is back in
            // use within seconds (the driver's default waits grow much longer), and a refused attempt costs nothing.
            ReconnectRetryPolicy = new ExponentialRetry(250, 2000),
            LoggerFactory = loggerFactory,
        };
        if (settings.Cluster.Enabled)
        {
            foreach (var node in settings.Cluster.Nodes)
            {
                var nodeUri = new Uri(node);
                options.EndPoints.Add(nodeUri.Host, nodeUri.Port);
                var (nodeUser, nodePassword) = UserInfo(nodeUri);
                options.User ??= nodeUser;
                options.Password ??= nodePassword;
                // A cluster configured by its nodes alone is on TLS when they say rediss.
                if (nodeUri.Scheme == "rediss") options.Ssl = true;
            }
        }
        else if (settings.Sentinel.Enabled)
        {
            // With ServiceName set, the multiplexer asks these sentinels for the primary and follows failovers.
            options.ServiceName = settings.Sentinel.MasterName;
            // One password for the sentinels and the servers (the validator refuses two different ones).
            options.Password ??= settings.Sentinel.Password;
            foreach (var sentinel in settings.Sentinel.Sentinels) options.EndPoints.Add(sentinel.Host, sentinel.Port);
            options.DefaultDatabase = Database(settings, url);
        }
        else
        {
            options.EndPoints.Add(url.Host, url.IsDefaultPort || url.Port <= 0 ? 6379 : url.Port);
            options.DefaultDatabase = Database(settings, url);
        }
        if (options.Ssl) RedisTls.Apply(options, settings.Tls);
        return options;
    }

    // connection.db, else the URL's path (/N), as in standalone mode.
    private static int Database(RedisSettings settings, Uri url)
    {
        var pathDb = url.AbsolutePath.Trim('/');
        return settings.Connection.Db != 0 || pathDb.Length == 0 ? settings.Connection.Db : int.Parse(pathDb, CultureInfo.InvariantCulture);
    }

    // At least 1 ms: a positive timeout under half a millisecond must not become 0 (which means something else).
    private static int Milliseconds(double seconds) => Math.Max(1, (int)Math.Round(seconds * 1000));

    private static (string? User, string? Password) UserInfo(Uri url)
    {
        if (url.UserInfo.Length == 0) return (null, null);
        var colon = url.UserInfo.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) return (Uri.UnescapeDataString(url.UserInfo), null);
        var user = Uri.UnescapeDataString(url.UserInfo[..colon]);
        return (user.Length == 0 ? null : user, Uri.UnescapeDataString(url.UserInfo[(colon + 1)..]));
    }
}

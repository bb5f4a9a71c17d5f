using System.Globalization;
using System.Net;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using StackExchange.Redis;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Redis.Diagnostics;

/// <summary>
/// The Redis checks of <c>polystore doctor</c>: memory and eviction policy, evictions, keys without a
/// TTL (sampled with SCAN, never KEYS), SLOWLOG, clients, keyspace hit ratio and tcp-backlog, the servers'
/// reachability, and with TLS each server's certificate. In a cluster every primary is checked. Remedies are exact
/// <c>redis-cli</c> commands.
/// </summary>
public sealed class RedisDiagnostics : IStoreDiagnostics
{
    /// <summary>The store name on every finding.</summary>
    public const string Store = StoreNames.Redis;

    string IStoreDiagnostics.Store => Store;

    private readonly RedisSettings _settings;
    private readonly IConnectionMultiplexer? _external;
    private readonly Lazy<Task<ConnectionMultiplexer>> _own;
    private readonly IReadOnlyList<string?> _secrets;
    private readonly int _database;
    private readonly string? _user;
    private readonly bool _tls;

    /// <summary>Prepares the checks; the connection (with admin commands allowed, for CONFIG and SLOWLOG) opens at the first check.</summary>
    /// <param name="settings">redis.yaml.</param>
    /// <param name="options">Thresholds; null = the defaults.</param>
    /// <param name="multiplexer">An existing connection to use instead (CONFIG and SLOWLOG need it to allow admin commands).</param>
    public RedisDiagnostics(RedisSettings settings, RedisDiagnosticOptions? options = null, IConnectionMultiplexer? multiplexer = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _settings = settings;
        Options = options ?? new RedisDiagnosticOptions();
        _external = multiplexer;
        var config = RedisDriverSettings.Build(settings);
        config.AllowAdmin = true;
        config.ClientName = "polystore-doctor";
        _database = config.DefaultDatabase ?? 0;
        _user = config.User;
        _tls = config.Ssl;
        _secrets = [config.Password, settings.Connection.Password, settings.Sentinel.Password, settings.Connection.Url, .. settings.Cluster.Nodes];
        _own = new Lazy<Task<ConnectionMultiplexer>>(() => ConnectionMultiplexer.ConnectAsync(config));
        HasPassword = config.Password is { Length: > 0 };
    }

    /// <summary>The thresholds in use.</summary>
    public RedisDiagnosticOptions Options { get; }

    /// <summary>Values to mask in anything printed.</summary>
    public IReadOnlyList<string?> Secrets => _secrets;

    private bool HasPassword { get; }

    /// <summary>Whether the connection is TLS (a <c>rediss://</c> endpoint or <c>ssl=true</c>).</summary>
    internal bool UsesTls => _tls;

    /// <summary>redis.yaml's <c>tls.ca_certificate</c>, when set.</summary>
    internal string? TlsCaCertificate => _settings.Tls.CaCertificate;

    /// <summary>Every Redis check, ready for <see cref="DiagnosticRunner"/>.</summary>
    public IReadOnlyList<DiagnosticCheck> Checks =>
    [
        Check("redis.memory", RedisChecks.MemoryAsync),
        Check("redis.evictions", RedisChecks.EvictionsAsync),
        Check("redis.keys_without_ttl", RedisChecks.KeysWithoutTtlAsync),
        Check("redis.slowlog", RedisChecks.SlowlogAsync),
        Check("redis.clients", RedisChecks.ClientsAsync),
        Check("redis.hit_ratio", RedisChecks.HitRatioAsync),
        Check("redis.tcp_backlog", RedisChecks.TcpBacklogAsync),
        new(Store, RedisServersCheck.Name, async ct =>
            await RedisServersCheck.RunAsync(this, await ConnectAsync(ct).ConfigureAwait(false), _settings.Cluster.Enabled, ct).ConfigureAwait(false)),
        new(Store, RedisTlsCheck.Name, async ct => await RedisTlsCheck.RunAsync(this, await ConnectAsync(ct).ConfigureAwait(false), ct).ConfigureAwait(false)),
    ];

    private DiagnosticCheck Check(string name, Func<RedisCheckContext, CancellationToken, Task<IReadOnlyList<Finding>>> run) =>
        new(Store, name, async ct =>
        {
            var muxer = await ConnectAsync(ct).ConfigureAwait(false);
            var servers = muxer.GetServers().Where(s => s.IsConnected && !s.IsReplica).ToList();
            if (servers.Count == 0)
                throw new InvalidOperationException($"no connected Redis primary ({string.Join(", ", muxer.GetServers().Select(s => Format(s.EndPoint)))})");
            var findings = new List<Finding>();
            foreach (var server in servers)
                findings.AddRange(await run(new RedisCheckContext(this, muxer, server, name), ct).ConfigureAwait(false));
            return findings;
        });

    private async Task<IConnectionMultiplexer> ConnectAsync(CancellationToken ct)
    {
        if (_external is not null) return _external;
        var muxer = await _own.Value.WaitAsync(ct).ConfigureAwait(false);
        if (!muxer.IsConnected) throw new InvalidOperationException($"could not connect to Redis at {string.Join(", ", muxer.GetEndPoints().Select(Format))}");
        return muxer;
    }

    internal int Database => _database;

    /// <summary>
    /// <paramref name="commands"/> (built with <c>askPass: false</c>) in a bash subshell that asks for the password once
    /// and hands it to them through REDISCLI_AUTH, never on a command line; the variable ends with the subshell.
    /// Unchanged when the server needs no password.
    /// </summary>
    internal string AskingPasswordOnce(string commands) =>
        HasPassword ? $"( read -rsp 'Redis password: ' REDISCLI_AUTH && export REDISCLI_AUTH && {commands} )" : commands;

    /// <summary>
    /// <c>redis-cli -h HOST -p PORT [--user 'U'] [--tls [--cacert CA] [--cert CERT --key KEY]] [--askpass]</c>: the password
    /// is asked for, never printed. The user and the paths are shell-quoted (ACL names may hold quotes and other shell
    /// characters). With <c>--tls</c> and no <c>tls.ca_certificate</c>, redis-cli trusts what OpenSSL's default store
    /// trusts (SSL_CERT_FILE / SSL_CERT_DIR), as the application trusts the system's store.
    /// </summary>
    /// <param name="endPoint">The server.</param>
    /// <param name="askPass">
    /// False for a command run many times or without a terminal (under xargs, whose children read /dev/null, --askpass
    /// gets an empty password): it then takes the password from REDISCLI_AUTH, which <see cref="AskingPasswordOnce"/> sets.
    /// </param>
    internal string Cli(EndPoint endPoint, bool askPass = true)
    {
        var (host, port) = endPoint switch
        {
            DnsEndPoint d => (d.Host, d.Port),
            IPEndPoint ip => (ip.Address.ToString(), ip.Port),
            _ => (endPoint.ToString() ?? "localhost", 6379),
        };
        var cli = $"redis-cli -h {host} -p {port}";
        if (_user is { Length: > 0 }) cli += $" --user {ShellQuote(_user)}";
        if (_tls)
        {
            cli += " --tls"; // a rediss:// endpoint answers nothing else
            // The files redis.yaml names, absolute so the command works from any folder; the key is its path, never its contents.
            var tls = _settings.Tls;
            if (tls.CaCertificate is { Length: > 0 } ca) cli += $" --cacert {ShellQuote(Path.GetFullPath(ca))}";
            if (tls.ClientCertificate is { Length: > 0 } cert)
                cli += $" --cert {ShellQuote(Path.GetFullPath(cert))} --key {ShellQuote(Path.GetFullPath(tls.ClientKey is { Length: > 0 } key ? key : cert))}";
        }
        if (HasPassword && askPass) cli += " --askpass";
        if (_database != 0) cli += $" -n {_database}";
        if (_settings.Cluster.Enabled) cli += " -c"; // follow MOVED redirections for key commands
        return cli;
    }

    internal Finding Finding(string check, Severity severity, string title, IReadOnlyDictionary<string, string> evidence, string? remedy) =>
        new(Store, check, severity, title, evidence, remedy);

    internal static string Format(EndPoint endPoint) => RedisPing.Format(endPoint);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_own.IsValueCreated)
        {
            try { await (await _own.Value.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false); }
            catch (RedisException) { /* never connected: nothing to close */ }
        }
    }
}

/// <summary>One check on one primary.</summary>
internal sealed record RedisCheckContext(RedisDiagnostics Doctor, IConnectionMultiplexer Muxer, IServer Server, string Check)
{
    public string Endpoint => RedisDiagnostics.Format(Server.EndPoint);
    public string Cli => Doctor.Cli(Server.EndPoint);
    public string CliWithoutPrompt => Doctor.Cli(Server.EndPoint, askPass: false); // the password from REDISCLI_AUTH
    public RedisDiagnosticOptions Options => Doctor.Options;

    public async Task<Dictionary<string, string>> InfoAsync(string section)
    {
        var raw = await Server.InfoRawAsync(section).ConfigureAwait(false) ?? "";
        var info = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in raw.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith('#')) info[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return info;
    }

    public Finding Finding(Severity severity, string title, IReadOnlyDictionary<string, string> evidence, string? remedy = null)
    {
        var withEndpoint = new Dictionary<string, string>(evidence, StringComparer.Ordinal) { ["endpoint"] = Endpoint };
        return Doctor.Finding(Check, severity, title, withEndpoint, remedy);
    }

    public static long Long(Dictionary<string, string> info, string key) =>
        info.TryGetValue(key, out var v) && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
}

using System.Globalization;
using System.Net;
using Polystore.Core.Diagnostics;
using StackExchange.Redis;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Redis.Diagnostics;

/// <summary>The Redis checks, each on one primary.</summary>
internal static class RedisChecks
{
    public static async Task<IReadOnlyList<Finding>> MemoryAsync(RedisCheckContext c, CancellationToken ct)
    {
        // INFO memory carries maxmemory and the policy too, so this works even where CONFIG is disabled.
        var info = await c.InfoAsync("memory").ConfigureAwait(false);
        var used = RedisCheckContext.Long(info, "used_memory");
        var max = RedisCheckContext.Long(info, "maxmemory");
        var policy = info.GetValueOrDefault("maxmemory_policy", "unknown");
        var evidence = Evidence(("used_memory", used), ("used_memory_human", Bytes(used)), ("maxmemory", max), ("maxmemory_policy", policy),
            ("used_memory_peak", RedisCheckContext.Long(info, "used_memory_peak")), ("mem_fragmentation_ratio", info.GetValueOrDefault("mem_fragmentation_ratio")));
        var suggested = Math.Max(used * 2, 64L << 20);
        if (max == 0)
        {
            var keep = await KeepAcrossRestartsAsync(c).ConfigureAwait(false);
            var noEviction = policy == "noeviction";
            return [c.Finding(noEviction ? Severity.Warning : Severity.Info,
                noEviction
                    ? $"No maxmemory limit and policy noeviction: {Bytes(used)} used and growing until the host runs out of memory"
                    : $"No maxmemory limit ({Bytes(used)} used, policy {policy} never applies)",
                evidence,
                $"{c.Cli} CONFIG SET maxmemory {suggested}\n{c.Cli} CONFIG SET maxmemory-policy {(noEviction ? "allkeys-lru" : policy)}   -- a cache: allkeys-lru; keys that must stay: volatile-lru with TTLs\n{keep}")];
        }
        var ratio = (double)used / max;
        var severity = ratio >= c.Options.MemoryCritical ? Severity.Critical : ratio >= c.Options.MemoryWarning ? Severity.Warning : Severity.Info;
        var consequence = policy == "noeviction" ? "writes fail with OOM once it is reached" : $"keys are evicted ({policy}) once it is reached";
        return [c.Finding(severity,
            $"{Bytes(used)} of maxmemory {Bytes(max)} used ({Percent(ratio)}); policy {policy}: {consequence}",
            new Dictionary<string, string>(evidence, StringComparer.Ordinal) { ["used_of_maxmemory"] = Percent(ratio) },
            severity == Severity.Info ? null
                : $"{c.Cli} CONFIG SET maxmemory {Math.Max(max * 2, used * 2)}\n{(policy == "noeviction" ? $"{c.Cli} CONFIG SET maxmemory-policy allkeys-lru   -- if this is a cache\n" : "")}{await KeepAcrossRestartsAsync(c).ConfigureAwait(false)}\n{c.Cli} --bigkeys   -- find what is large")];
    }

    // CONFIG REWRITE fails ("ERR The server is running without a config file") on a server started from its command
    // line alone; INFO server names the file (empty when there is none), and works where CONFIG is disabled.
    private static async Task<string> KeepAcrossRestartsAsync(RedisCheckContext c)
    {
        var file = (await c.InfoAsync("server").ConfigureAwait(false)).GetValueOrDefault("config_file", "");
        return file.Length > 0
            ? $"{c.Cli} CONFIG REWRITE   -- keep it across restarts (writes {file})"
            : "To keep it across restarts, put the same settings on the server's command line (--maxmemory ..., --maxmemory-policy ...) or in a redis.conf it starts from: it was started without a config file, so CONFIG REWRITE would fail";
    }

    public static async Task<IReadOnlyList<Finding>> EvictionsAsync(RedisCheckContext c, CancellationToken ct)
    {
        var info = await c.InfoAsync("stats").ConfigureAwait(false);
        var evicted = RedisCheckContext.Long(info, "evicted_keys");
        var expired = RedisCheckContext.Long(info, "expired_keys");
        if (evicted == 0) return [];
        return [c.Finding(Severity.Warning,
            $"{evicted} keys were evicted for lack of memory since the last restart or CONFIG RESETSTAT",
            Evidence(("evicted_keys", evicted), ("expired_keys", expired)),
            $"{c.Cli} INFO memory   -- then raise the limit: {c.Cli} CONFIG SET maxmemory <bytes>, give keys TTLs, or shard (Redis Cluster)")];
    }

    private const int MaxScanRounds = 1_000;

    public static async Task<IReadOnlyList<Finding>> KeysWithoutTtlAsync(RedisCheckContext c, CancellationToken ct)
    {
        // SCAN, never KEYS: KEYS blocks the server for the whole keyspace. The sample is bounded.
        var db = c.Muxer.GetDatabase(c.Doctor.Database);
        var max = Math.Max(1, c.Options.TtlSampleSize);
        var keys = new List<RedisKey>(Math.Min(max, 1024));
        var cursor = "0";
        var rounds = 0;
        do
        {
            ct.ThrowIfCancellationRequested();
            var reply = await c.Server.ExecuteAsync(c.Doctor.Database, "SCAN", [cursor, "MATCH", c.Options.ScanPattern, "COUNT", 100]).ConfigureAwait(false);
            var parts = (RedisResult[])reply!;
            cursor = (string)parts[0]!;
            foreach (var key in (RedisResult[])parts[1]!)
            {
                if (keys.Count >= max) break;
                keys.Add((RedisKey)(string)key!);
            }
            rounds++;
            // A round budget bounds a sparse MATCH on a huge keyspace (at most ~100k keys examined); it must not
            // depend on the sample size, or a small sample would stop long before finding its keys.
        } while (cursor != "0" && keys.Count < max && rounds < MaxScanRounds);
        if (keys.Count == 0) return [];
        var ttls = await Task.WhenAll(keys.Select(k => db.KeyTimeToLiveAsync(k))).ConfigureAwait(false);
        var noTtl = keys.Where((_, i) => ttls[i] is null).ToList();
        var ratio = (double)noTtl.Count / keys.Count;
        var prefixes = noTtl.GroupBy(k => Prefix(k!)).OrderByDescending(g => g.Count()).Take(5).ToList();
        var severity = keys.Count >= c.Options.TtlMinSample && ratio >= c.Options.NoTtlWarning ? Severity.Warning : Severity.Info;
        var top = prefixes.Count > 0 ? prefixes[0].Key : "*";
        var dbsize = await c.Server.DatabaseSizeAsync(c.Doctor.Database).ConfigureAwait(false);
        var evidence = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["sampled_keys"] = Num(keys.Count),
            ["without_ttl"] = Num(noTtl.Count),
            ["without_ttl_fraction"] = Percent(ratio),
            ["dbsize"] = Num(dbsize),
            ["pattern"] = c.Options.ScanPattern,
            ["scan_rounds"] = Num(rounds),
        };
        foreach (var g in prefixes) evidence["prefix." + g.Key] = Num(g.Count());
        return [c.Finding(severity,
            $"{noTtl.Count} of {keys.Count} sampled keys have no TTL ({Percent(ratio)}){(prefixes.Count > 0 ? $"; most under '{top}'" : "")}",
            evidence,
            noTtl.Count == 0 ? null
                : $"Write them with a TTL (SET key value EX 3600). For the existing keys under one prefix (bash):\n" +
                  c.Doctor.AskingPasswordOnce($"{c.CliWithoutPrompt} --no-raw --scan --pattern {ShellQuote(prefixes.Count > 0 ? GlobEscape(top) + "*" : "*")} | sed 's/^/EXPIRE /; s/$/ 86400 NX/' | {c.CliWithoutPrompt}"))];
    }

    // The prefix matched literally by SCAN's MATCH (its glob characters escaped). Keys are data and may hold spaces,
    // quotes or newlines, so none goes through a line splitter raw: --no-raw prints each key quoted and escaped
    // ("a\nb"), one a line, and redis-cli reading commands on stdin parses exactly that quoting back into the key.
    private static string GlobEscape(string literal)
    {
        var escaped = new System.Text.StringBuilder(literal.Length + 4);
        foreach (var ch in literal)
        {
            if (ch is '*' or '?' or '[' or ']' or '\\') escaped.Append('\\');
            escaped.Append(ch);
        }
        return escaped.ToString();
    }

    private static string Prefix(string key)
    {
        var i = key.IndexOfAny([':', '.', '/', '|']);
        return i > 0 ? key[..(i + 1)] : key.Length > 12 ? key[..12] : key;
    }

    public static async Task<IReadOnlyList<Finding>> SlowlogAsync(RedisCheckContext c, CancellationToken ct)
    {
        CommandTrace[] entries;
        try
        {
            entries = await c.Server.SlowlogGetAsync(c.Options.SlowlogEntries).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("NOPERM", StringComparison.Ordinal))
        {
            return [c.Finding(Severity.Info, $"SLOWLOG is not available to this connection: {e.Message}", Evidence(("error", e.Message)),
                "Allow it for the doctor's user: ACL SETUSER <user> +slowlog")];
        }
        if (entries.Length == 0) return [];
        var findings = new List<Finding>();
        var warn = c.Options.SlowCommandWarning;
        foreach (var e in entries.OrderByDescending(e => e.Duration).Where(e => e.Duration >= warn))
        {
            var command = CommandText(e, c.Doctor.Secrets);
            findings.Add(c.Finding(Severity.Warning,
                $"Slow command ({Num(e.Duration.TotalMilliseconds, "0.#")} ms): {command}",
                Evidence(("duration_ms", Num(e.Duration.TotalMilliseconds, "0.###")), ("at", e.Time), ("command", command), ("slowlog_id", e.UniqueId)),
                Advice(e, c.Cli)));
        }
        var slowest = entries.Max(e => e.Duration);
        findings.Add(c.Finding(Severity.Info,
            $"SLOWLOG holds {entries.Length} recent entries; the slowest took {Num(slowest.TotalMilliseconds, "0.#")} ms",
            Evidence(("entries_read", entries.Length), ("slowest_ms", Num(slowest.TotalMilliseconds, "0.###")),
                ("top", string.Join(" | ", entries.OrderByDescending(e => e.Duration).Take(3).Select(e => $"{Num(e.Duration.TotalMilliseconds, "0.#")} ms {CommandText(e, c.Doctor.Secrets, 60)}")))),
            null));
        return findings;
    }

    private static string CommandText(CommandTrace e, IEnumerable<string?> secrets, int max = 120) =>
        Snippet(string.Join(' ', e.Arguments.Select(a => a.ToString())), secrets, max);

    private static string Advice(CommandTrace e, string cli)
    {
        var name = e.Arguments.Length > 0 ? e.Arguments[0].ToString().ToUpperInvariant() : "";
        // The key is data (anyone who can write one chooses its name): quoted as one shell word, never run.
        var key = e.Arguments.Length > 1 ? ShellQuote(e.Arguments[1].ToString()) : "<key>";
        return name switch
        {
            "KEYS" => "Replace KEYS with SCAN (cursor, MATCH, COUNT) in the application: KEYS blocks the server for the whole keyspace",
            "HGETALL" or "SMEMBERS" or "LRANGE" or "ZRANGE" or "SUNION" or "SINTER" =>
                $"{cli} MEMORY USAGE {key}   -- a big collection: page it (HSCAN / SSCAN / ZSCAN or ranges) or split it",
            "DEL" => $"Use UNLINK instead of DEL for big keys: {cli} UNLINK {key}",
            "FLUSHALL" or "FLUSHDB" => "Use FLUSHALL ASYNC / FLUSHDB ASYNC",
            "EVAL" or "EVALSHA" or "FCALL" => "Shorten the script: it blocks the server while it runs",
            _ => $"{cli} --bigkeys   -- then {cli} SLOWLOG RESET once fixed",
        };
    }

    public static async Task<IReadOnlyList<Finding>> ClientsAsync(RedisCheckContext c, CancellationToken ct)
    {
        var info = await c.InfoAsync("clients").ConfigureAwait(false);
        var connected = RedisCheckContext.Long(info, "connected_clients");
        var blocked = RedisCheckContext.Long(info, "blocked_clients");
        var maxClients = RedisCheckContext.Long(info, "maxclients");
        var ratio = maxClients > 0 ? (double)connected / maxClients : 0;
        var severity = ratio >= c.Options.ClientsCritical ? Severity.Critical : ratio >= c.Options.ClientsWarning ? Severity.Warning : Severity.Info;
        return [c.Finding(severity,
            $"{connected} clients connected{(maxClients > 0 ? $" of maxclients {maxClients} ({Percent(ratio)})" : "")}; {blocked} blocked in BLPOP/BRPOP/WAIT-style calls",
            Evidence(("connected_clients", connected), ("blocked_clients", blocked), ("maxclients", maxClients > 0 ? maxClients : null), ("used_of_maxclients", maxClients > 0 ? Percent(ratio) : null)),
            severity == Severity.Info ? null
                : $"{c.Cli} CLIENT LIST TYPE normal   -- find the process holding many connections (a multiplexer per process is enough), then if needed: {c.Cli} CONFIG SET maxclients {Math.Max(maxClients * 2, 20000)}")];
    }

    public static async Task<IReadOnlyList<Finding>> HitRatioAsync(RedisCheckContext c, CancellationToken ct)
    {
        var info = await c.InfoAsync("stats").ConfigureAwait(false);
        var hits = RedisCheckContext.Long(info, "keyspace_hits");
        var misses = RedisCheckContext.Long(info, "keyspace_misses");
        var lookups = hits + misses;
        if (lookups < c.Options.HitRatioMinLookups)
        {
            return [c.Finding(Severity.Info, $"Keyspace hit ratio not judged yet: only {lookups} lookups since the last restart or CONFIG RESETSTAT",
                Evidence(("keyspace_hits", hits), ("keyspace_misses", misses), ("min_lookups", c.Options.HitRatioMinLookups)))];
        }
        var ratio = (double)hits / lookups;
        var low = ratio < c.Options.HitRatioWarning;
        return [c.Finding(low ? Severity.Warning : Severity.Info,
            $"Keyspace hit ratio {Percent(ratio)} ({hits} hits, {misses} misses)",
            Evidence(("keyspace_hits", hits), ("keyspace_misses", misses), ("hit_ratio", Percent(ratio)), ("warning_below", Percent(c.Options.HitRatioWarning))),
            low ? $"TTLs may be too short or keys evicted early (see redis.evictions); measure a fresh window: {c.Cli} CONFIG RESETSTAT, then {c.Cli} INFO stats" : null)];
    }

    public static async Task<IReadOnlyList<Finding>> TcpBacklogAsync(RedisCheckContext c, CancellationToken ct)
    {
        int backlog;
        try
        {
            var reply = (RedisResult[])(await c.Server.ExecuteAsync("CONFIG", "GET", "tcp-backlog").ConfigureAwait(false))!;
            if (reply.Length < 2) throw new InvalidOperationException("CONFIG GET tcp-backlog returned nothing");
            backlog = int.Parse((string)reply[1]!, CultureInfo.InvariantCulture);
        }
        catch (RedisServerException e) when (e.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("NOPERM", StringComparison.Ordinal))
        {
            return [c.Finding(Severity.Info, "tcp-backlog not visible: CONFIG is disabled on this server (renamed, or not allowed by ACL)",
                Evidence(("error", e.Message)),
                "Read tcp-backlog from the server's redis.conf, or allow CONFIG GET for the doctor's user: ACL SETUSER <user> +config|get")];
        }
        var somaxconn = LocalSomaxconn(c.Endpoint);
        var evidence = Evidence(("tcp_backlog", backlog), ("somaxconn_local", somaxconn), ("minimum", c.Options.TcpBacklogMinimum));
        var capped = somaxconn is { } s && s < backlog;
        var low = backlog < c.Options.TcpBacklogMinimum;
        return [c.Finding(low || capped ? Severity.Warning : Severity.Info,
            capped ? $"tcp-backlog {backlog} is capped by the kernel's net.core.somaxconn {somaxconn}: bursts of connections are refused"
                : low ? $"tcp-backlog {backlog} is below {c.Options.TcpBacklogMinimum}: bursts of new connections time out"
                : $"tcp-backlog {backlog}",
            evidence,
            low || capped
                ? $"tcp-backlog cannot be changed at run time: set 'tcp-backlog {Math.Max(backlog, 1024)}' in redis.conf and restart, with sysctl -w net.core.somaxconn={Math.Max(backlog, 1024)} on the host"
                : null)];
    }

    /// <summary>somaxconn is readable only when the server runs on this host (a loopback endpoint).</summary>
    private static int? LocalSomaxconn(string endpoint)
    {
        if (!(endpoint.StartsWith("127.", StringComparison.Ordinal) || endpoint.StartsWith("localhost", StringComparison.Ordinal) || endpoint.StartsWith("[::1]", StringComparison.Ordinal))) return null;
        try
        {
            return int.TryParse(File.ReadAllText("/proc/sys/net/core/somaxconn").Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}

/// <summary>
/// <c>redis.servers</c>, once for the whole deployment: every server the connection knows is reachable and, in a
/// cluster, every slot is served. The per-primary checks only see the primaries that answer, so without this a
/// dead primary (and the keys of its slots) would go unreported.
/// </summary>
internal static class RedisServersCheck
{
    public const string Name = "redis.servers";
    private const int AllSlots = 16384;

    public static async Task<IReadOnlyList<Finding>> RunAsync(RedisDiagnostics doctor, IConnectionMultiplexer muxer, bool cluster, CancellationToken ct)
    {
        var servers = muxer.GetServers();
        var up = servers.Where(s => s.IsConnected).ToList();
        var findings = new List<Finding>();
        IReadOnlyList<string[]> nodes = [];
        if (cluster && up.FirstOrDefault(s => !s.IsReplica) is { } live)
        {
            (var clusterFindings, nodes) = await ClusterAsync(doctor, live, ct).ConfigureAwait(false);
            findings.AddRange(clusterFindings);
        }
        foreach (var down in servers.Where(s => !s.IsConnected))
        {
            var endpoint = RedisDiagnostics.Format(down.EndPoint);
            // One finding per node: the cluster's own view of a node it marks failed says more (role, slots, what to do).
            if (findings.Any(f => f.Evidence.GetValueOrDefault("node") == endpoint)) continue;
            var replica = down.IsReplica || nodes.Any(n => n[1].Split('@')[0] == endpoint && n[2].Split(',').Contains("slave"));
            findings.Add(doctor.Finding(Name, replica ? Severity.Warning : Severity.Critical,
                replica ? $"Redis replica {endpoint} does not answer: one copy less, its primary still serves" : $"Redis server {endpoint} does not answer",
                Evidence(("endpoint", endpoint), ("role", replica ? "replica" : null), ("connected_servers", up.Count), ("known_servers", servers.Length)),
                $"{doctor.Cli(down.EndPoint)} PING   -- then the server's log and service (systemctl status redis-server)"));
        }
        if (findings.Count == 0)
            findings.Add(doctor.Finding(Name, Severity.Info,
                servers.Length == 1 ? "The Redis server answers"
                    : $"All {servers.Length} Redis servers answer ({Count(up.Count(s => !s.IsReplica), "primary", "primaries")}, {Count(up.Count(s => s.IsReplica), "replica", "replicas")})",
                Evidence(("known_servers", servers.Length)), null));
        return findings;
    }

    // CLUSTER INFO says whether every slot is served; CLUSTER NODES says which nodes the cluster itself marks failed
    // (a failed primary still holding slots means those keys cannot be read or written).
    private static async Task<(IReadOnlyList<Finding> Findings, IReadOnlyList<string[]> Nodes)> ClusterAsync(RedisDiagnostics doctor, IServer live, CancellationToken ct)
    {
        var info = Fields(await TextAsync(live, "INFO", ct).ConfigureAwait(false));
        var nodes = (await TextAsync(live, "NODES", ct).ConfigureAwait(false))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' '))
            .Where(f => f.Length >= 8)
            .ToList();
        var liveEndpoint = RedisDiagnostics.Format(live.EndPoint);
        var cli = doctor.Cli(live.EndPoint);
        var check = $"{cli} --cluster check {liveEndpoint}";
        var findings = new List<Finding>();
        foreach (var node in nodes)
        {
            var flags = node[2].Split(',');
            if (!flags.Contains("fail") && !flags.Contains("fail?")) continue;
            var address = node[1].Split('@')[0];
            var primary = flags.Contains("master");
            var slots = node.Length > 8 ? string.Join(' ', node[8..]) : "";
            var serving = primary && slots.Length > 0;
            var replica = nodes.FirstOrDefault(n => n[3] == node[0] && !n[2].Split(',').Any(f => f is "fail" or "fail?"));
            var promote = replica is null
                ? "it has no live replica to promote"
                : $"or promote its replica: {doctor.Cli(ParseEndPoint(replica[1]))} CLUSTER FAILOVER FORCE";
            findings.Add(doctor.Finding(Name, serving ? Severity.Critical : Severity.Warning,
                serving
                    ? $"Cluster primary {address} is marked {node[2]} and still holds slots {slots}: their keys cannot be read or written"
                    : $"Cluster node {address} ({(primary ? "primary without slots" : "replica")}) is marked {node[2]}: one copy less",
                Evidence(("node", address), ("node_id", node[0]), ("flags", node[2]), ("slots", slots.Length > 0 ? slots : "none")),
                serving
                    ? $"{check}\nStart {address} again ({promote})\n{cli} --cluster fix {liveEndpoint}   -- only once it is gone for good: gives its slots to live primaries (their keys are lost)"
                    : $"{check}\nStart {address} again, or remove it: {cli} --cluster del-node {liveEndpoint} {node[0]}"));
        }
        var state = info.GetValueOrDefault("cluster_state", "unknown");
        if (state != "ok")
        {
            var served = long.TryParse(info.GetValueOrDefault("cluster_slots_ok"), CultureInfo.InvariantCulture, out var ok) ? ok : 0;
            findings.Insert(0, doctor.Finding(Name, Severity.Critical,
                $"Cluster state is {state}: {Num(AllSlots - served)} of {Num(AllSlots)} slots are not served, and with cluster-require-full-coverage on (the default) the cluster refuses every command while it is",
                Evidence(("cluster_state", state), ("cluster_slots_assigned", info.GetValueOrDefault("cluster_slots_assigned")),
                    ("cluster_slots_ok", info.GetValueOrDefault("cluster_slots_ok")), ("cluster_slots_pfail", info.GetValueOrDefault("cluster_slots_pfail")),
                    ("cluster_slots_fail", info.GetValueOrDefault("cluster_slots_fail")), ("cluster_known_nodes", info.GetValueOrDefault("cluster_known_nodes")),
                    ("asked", liveEndpoint)),
                check));
        }
        return (findings, nodes);
    }

    private static string Count(int n, string one, string many) => $"{Num(n)} {(n == 1 ? one : many)}";

    // CLUSTER replies are verbatim strings: over RESP3 they come prefixed with their format ("txt:").
    private static async Task<string> TextAsync(IServer server, string subcommand, CancellationToken ct)
    {
        var text = (string?)await server.ExecuteAsync("CLUSTER", subcommand).WaitAsync(ct).ConfigureAwait(false) ?? "";
        return text.StartsWith("txt:", StringComparison.Ordinal) ? text[4..] : text;
    }

    // "host:port" or "[v6]:port" of CLUSTER NODES (the cluster bus port after '@' already cut off).
    private static EndPoint ParseEndPoint(string address)
    {
        address = address.Split('@')[0].Split(',')[0];
        var colon = address.LastIndexOf(':');
        var host = address[..colon].Trim('[', ']');
        var port = int.Parse(address[(colon + 1)..], CultureInfo.InvariantCulture);
        return IPAddress.TryParse(host, out var ip) ? new IPEndPoint(ip, port) : new DnsEndPoint(host, port);
    }

    private static Dictionary<string, string> Fields(string raw)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in raw.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0) fields[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return fields;
    }
}

/// <summary>
/// With TLS (a <c>rediss://</c> endpoint): the certificate each server the connection knows presents, fetched in a
/// handshake of the doctor's own, so one about to expire is reported while connections still work.
/// </summary>
internal static class RedisTlsCheck
{
    public const string Name = "redis.tls";

    public static async Task<IReadOnlyList<Finding>> RunAsync(RedisDiagnostics doctor, IConnectionMultiplexer muxer, CancellationToken ct)
    {
        if (!doctor.UsesTls) return [];
        var endpoints = muxer.GetEndPoints().Select(e => (EndPoint: e, Address: HostPort(e))).Where(e => e.Address is not null).ToList();
        var presented = await Task.WhenAll(endpoints.Select(e => TlsCertificateReport.PresentedAsync(e.Address!.Value.Host, e.Address.Value.Port, ct))).ConfigureAwait(false);
        var ca = doctor.TlsCaCertificate;
        var check = ca is { Length: > 0 } ? $"checked against tls.ca_certificate ('{ca}')" : "checked against the system's trust store";
        var findings = new List<Finding>();
        var now = DateTimeOffset.UtcNow;
        foreach (var ((endPoint, _), certificate) in endpoints.Zip(presented))
        {
            if (certificate is null) continue; // unreachable: redis.servers says so
            using (certificate)
            {
                var endpoint = RedisDiagnostics.Format(endPoint);
                var (severity, when, notAfter, daysLeft) = TlsCertificateReport.Expiry(certificate, now, doctor.Options.TlsExpiryWarning);
                findings.Add(doctor.Finding(Name, severity, $"{endpoint}: TLS certificate {certificate.Subject} {when}; {check}",
                    Evidence(("endpoint", endpoint), ("subject", certificate.Subject), ("issuer", certificate.Issuer), ("not_after", notAfter), ("days_left", daysLeft)),
                    severity == Severity.Info ? null
                        : "Renew the server's certificate (redis.conf tls-cert-file and tls-key-file); Redis reads new files with "
                          + $"{doctor.Cli(endPoint)} CONFIG SET tls-cert-file /path/to/new.crt tls-key-file /path/to/new.key"));
            }
        }
        return [.. findings.OrderByDescending(f => f.Severity)];
    }

    private static (string Host, int Port)? HostPort(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint d => (d.Host, d.Port),
        IPEndPoint ip => (ip.Address.ToString(), ip.Port),
        _ => null,
    };
}

#:project ../../src/Polystore.Redis/Polystore.Redis.csproj
#:property NoWarn=$(NoWarn);CA2007
// A bare loop of TryAcquireAsync for a profiler to attach to (docs/benchmarks.md, "Where the client CPU goes"):
//   dotnet run benchmarks/profiling/limiter-loop.cs -c Release -- 127.0.0.1:6379 16 10 [bare]
// arguments: Redis endpoint, callers, seconds per round (three rounds), and "bare" to call the limiter's script
// directly (one ScriptEvaluateAsync per decision through the same multiplexer, the same KEYS and ARGV) instead of
// TryAcquireAsync: the floor any limiter built on StackExchange.Redis starts from. The limiter is set up as
// `bench redis` sets it (100 permits per 1 s window over 1,000 keys, remembered denials off); each round prints
// decisions/s and this process's CPU per decision.
using System.Diagnostics;
using System.Globalization;
using Polystore.Redis.RateLimiting;
using StackExchange.Redis;

var callers = int.Parse(args[1], CultureInfo.InvariantCulture);
var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
var bare = args.Length > 3 && args[3] == "bare";
await using var redis = await ConnectionMultiplexer.ConnectAsync(args[0]);
var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
{
    PermitLimit = 100, Window = TimeSpan.FromSeconds(1), KeyPrefix = "limiter-loop", RememberDenialsFor = TimeSpan.Zero,
});
var keys = Enumerable.Range(0, 1000).Select(i => "k" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
var db = redis.GetDatabase();
var sha = Convert.FromHexString(RedisSlidingWindowRateLimiter.Script.Sha1Hex);
await db.ScriptEvaluateAsync(RedisSlidingWindowRateLimiter.Script.Source, [(RedisKey)"{limiter-bare:k0}:log"], [1_000_000, 100, 0]); // loads it
var instance = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..6]);
long batch = 0;
using var self = Process.GetCurrentProcess();
for (var round = 0; round < 3; round++)
{
    var end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
    self.Refresh();
    var cpu0 = self.TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    var counts = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
    {
        long n = 0;
        while (Stopwatch.GetTimestamp() < end)
        {
            var key = keys[Random.Shared.Next(keys.Length)];
            if (!bare) await limiter.TryAcquireAsync(key);
            else await db.ScriptEvaluateAsync(sha, [(RedisKey)("{limiter-bare:" + key + "}:log")], [1_000_000, 100, 1, instance, Interlocked.Increment(ref batch)]);
            n++;
        }
        return n;
    })));
    self.Refresh();
    var total = counts.Sum();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{callers} callers{(bare ? " (bare script calls)" : "")}: {total / watch.Elapsed.TotalSeconds:0} decisions/s, client {(self.TotalProcessorTime - cpu0).TotalMicroseconds / total:0.00} us/decision"));
}

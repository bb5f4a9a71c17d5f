using Polystore.Postgres;
using Polystore.Redis.RateLimiting;

namespace Polystore.Samples.UsersService;

/// <summary>The <c>UsersService</c> configuration section (appsettings.json, <c>UsersService__Schema</c>, ...).</summary>
internal sealed class UsersServiceOptions
{
    public const string Section = "UsersService";

    /// <summary>
    /// The PostgreSQL schema of the users, orders and outbox tables, also the start of every Redis key the service
    /// writes, so instances with different schemas (tests in parallel, tenants) never share state.
    /// </summary>
    public string Schema { get; set; } = "users_service";

    /// <summary>Keep the read model in PostgreSQL even when MongoDB is configured.</summary>
    public bool PostgresReadModel { get; set; }

    /// <summary>
    /// The key that signs page cursors, base64 (at least 32 bytes). Give every instance the same one so cursors survive
    /// restarts and load balancing; unset, a random key per process is used (cursors die with the process).
    /// </summary>
    public string? CursorKey { get; set; }

    /// <summary>List pages and rankings read from the replicas (when configured), which may lag the primary slightly.</summary>
    public bool ReadFromReplicas { get; set; } = true;

    /// <summary>
    /// How long each instance keeps its own copy of a profile it read (zero turns copies off). A profile update drops the
    /// copy in every instance as the projection invalidates Redis (over a Redis channel), so a copy is stale only for the
    /// channel's delivery time; this bounds it when the connection to Redis was lost.
    /// </summary>
    public TimeSpan ProfileLocalCacheTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Rows per statement of a bulk upsert (memory per request follows it).</summary>
    public int BulkChunkSize { get; set; } = 5_000;

    /// <summary>The per-client rate limit of the API endpoints.</summary>
    public RateLimitOptions RateLimit { get; set; } = new();

    /// <summary>The per-user order lock.</summary>
    public OrderLockOptions Orders { get; set; } = new();

    /// <summary>How often the outbox dispatcher polls when no notification arrives.</summary>
    public TimeSpan OutboxPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The analytics pipeline's collections when MongoDB is configured.</summary>
    public string AnalyticsUsersCollection { get; set; } = "users";

    /// <inheritdoc cref="AnalyticsUsersCollection"/>
    public string AnalyticsOrdersCollection { get; set; } = "orders";

    internal sealed class RateLimitOptions
    {
        /// <summary>Requests admitted per window and client (API key, else client address).</summary>
        public int PermitLimit { get; set; } = 600;

        /// <summary>The sliding window.</summary>
        public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);

        /// <summary>
        /// What happens while Redis is unreachable: FailOpen (default) keeps the API up, since PostgreSQL holds the data;
        /// FailClosed answers 429.
        /// </summary>
        public RedisFailureMode OnRedisFailure { get; set; } = RedisFailureMode.FailOpen;

        /// <summary>
        /// How long a client found over its limit is answered 429 without asking Redis (never past the moment its
        /// window frees a request); 00:00:00 asks Redis on every request.
        /// </summary>
        public TimeSpan RememberDenialsFor { get; set; } = TimeSpan.FromSeconds(1);
    }

    internal sealed class OrderLockOptions
    {
        /// <summary>The lease of a user's order lock: a holder stalled longer than this loses it, and its write is refused by the fencing token.</summary>
        public TimeSpan LockExpiry { get; set; } = TimeSpan.FromSeconds(10);

        /// <summary>How long a request waits for another order of the same user before answering 503.</summary>
        public TimeSpan LockWait { get; set; } = TimeSpan.FromSeconds(10);
    }

    /// <summary>Throws naming the first setting that is not usable.</summary>
    public void Validate()
    {
        if (!PostgresIdentifier.IsPlain(Schema))
            throw new InvalidOperationException($"{Section}:{nameof(Schema)} '{Schema}' is not a valid schema name: use 1-{PostgresIdentifier.MaxLength} lower-case letters, digits and underscores, starting with a letter or underscore.");
        if (CursorKey is { Length: > 0 } key)
        {
            byte[] bytes;
            try { bytes = Convert.FromBase64String(key); }
            catch (FormatException) { throw new InvalidOperationException($"{Section}:{nameof(CursorKey)} is not base64."); }
            if (bytes.Length < 32) throw new InvalidOperationException($"{Section}:{nameof(CursorKey)} must decode to at least 32 bytes (it has {bytes.Length}).");
        }
        if (BulkChunkSize is < 1 or > 100_000) throw new InvalidOperationException($"{Section}:{nameof(BulkChunkSize)} must be between 1 and 100,000 (it is {BulkChunkSize}).");
        if (RateLimit.PermitLimit < 1) throw new InvalidOperationException($"{Section}:RateLimit:PermitLimit must be at least 1.");
        if (RateLimit.Window < TimeSpan.FromMilliseconds(1)) throw new InvalidOperationException($"{Section}:RateLimit:Window must be positive.");
        if (RateLimit.RememberDenialsFor < TimeSpan.Zero) throw new InvalidOperationException($"{Section}:RateLimit:RememberDenialsFor must not be negative (00:00:00 turns it off).");
        if (Orders.LockExpiry < TimeSpan.FromMilliseconds(10)) throw new InvalidOperationException($"{Section}:Orders:LockExpiry must be at least 10 ms.");
        if (Orders.LockWait < TimeSpan.Zero) throw new InvalidOperationException($"{Section}:Orders:LockWait must not be negative.");
        if (ProfileLocalCacheTtl < TimeSpan.Zero) throw new InvalidOperationException($"{Section}:{nameof(ProfileLocalCacheTtl)} must not be negative (zero turns local copies off).");
        if (OutboxPollInterval <= TimeSpan.Zero) throw new InvalidOperationException($"{Section}:{nameof(OutboxPollInterval)} must be positive.");
    }
}

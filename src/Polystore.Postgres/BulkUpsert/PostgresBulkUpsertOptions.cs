using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Options for one bulk upsert call. Defaults suit most loads. Inside the caller's transaction only
/// <see cref="UnnestThreshold"/>, <see cref="MergeHashMemoryBytes"/> and <see cref="CommandTimeout"/> apply: the mode
/// must stay <see cref="PostgresBulkUpsertMode.Atomic"/>, and <see cref="ChunkSize"/> and <see cref="Parallelism"/> at their defaults.
/// </summary>
public sealed record PostgresBulkUpsertOptions
{
    /// <summary>The default options: atomic.</summary>
    public static PostgresBulkUpsertOptions Default { get; } = new();

    /// <summary>Atomic (default), chunked or parallel. Only atomic inside the caller's transaction.</summary>
    public PostgresBulkUpsertMode Mode { get; init; } = PostgresBulkUpsertMode.Atomic;

    /// <summary>Rows per transaction in chunked and parallel modes. Default 50,000.</summary>
    public int ChunkSize { get; init; } = 50_000;

    /// <summary>
    /// Connections used at once in parallel mode. Default 4. More than the server has cores only adds waiting:
    /// on a 2-core server, 2 connections upserted faster than 4 on both the insert and the update path (the backends
    /// queued on the WAL write lock), so match it to the server.
    /// </summary>
    public int Parallelism { get; init; } = 4;

    /// <summary>
    /// Batches of at most this many rows are sent as arrays through <c>unnest</c> in one round trip
    /// instead of COPY into a temporary table (measured faster up to about 10,000 rows). 0 turns it off. Default 10,000;
    /// at most <see cref="MaxUnnestThreshold"/>. A table with an array column is always staged with COPY.
    /// </summary>
    public int UnnestThreshold { get; init; } = 10_000;

    /// <summary>
    /// The largest <see cref="UnnestThreshold"/> accepted: such a batch is held in memory whole and sent as one array
    /// per column, and PostgreSQL refuses a parameter over 1 GB; above this size COPY is faster anyway.
    /// </summary>
    public const int MaxUnnestThreshold = 1_000_000;

    /// <summary>
    /// How long one statement of the upsert (the COPY, the statement that applies a batch, a lock wait inside it) may
    /// run before it is cancelled. Default <see cref="Timeout.InfiniteTimeSpan"/>: no limit, unlike the connection's
    /// <c>command_timeout</c> (30 s), which is not used here. A COPY or MERGE of one batch runs as long as the batch
    /// is large (updating 1M rows in one batch took 13-17 s on the test machine; larger batches and slower disks take longer), so a fixed per-statement limit
    /// would cut off a correct load halfway; bound the whole call with its <see cref="CancellationToken"/> instead.
    /// Otherwise a positive time, in whole seconds (rounded up), up to <see cref="MaxCommandTimeout"/>.
    /// When it expires the upsert fails with a <see cref="PostgresBulkUpsertException"/> that names this option.
    /// </summary>
    public TimeSpan CommandTimeout { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>The longest finite <see cref="CommandTimeout"/>: Npgsql's limit, 2,147,483 s (about 24.8 days).</summary>
    public static readonly TimeSpan MaxCommandTimeout = TimeSpan.FromSeconds(int.MaxValue / 1000);

    /// <summary>
    /// How the MERGE of a staged batch (more than <see cref="UnnestThreshold"/> rows) joins the table, set for that
    /// statement only and restored right after: a batch of at least a quarter of the table hashes the table in one
    /// pass, with <c>work_mem</c> raised (never lowered) as far as this many bytes of hash; any other batch, or a table
    /// whose hash would not fit, is joined by probing the conflict key's unique index, except a batch more than four
    /// times the table, which is left to the planner. Measured on a 1M-row table (see the README). 0 leaves the
    /// planner's settings alone. Default 256 MiB.
    /// </summary>
    public long MergeHashMemoryBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>
    /// Where the upsert logs what it recovers from (a MERGE that met a concurrent write, a retried chunk, a COMMIT whose
    /// connection was lost). Null (the default): the factory the data source was created with by
    /// <see cref="PostgresDataSources.Create"/>, else nothing. Inside the caller's transaction only this one is used.
    /// </summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The logger of <see cref="LoggerFactory"/> (created on demand: only rare paths log).</summary>
    internal ILogger Logger => LoggerFactory?.CreateLogger(PostgresLog.BulkUpsertCategory) ?? NullLogger.Instance;

    internal void Validate()
    {
        if (MergeHashMemoryBytes < 0) throw new ArgumentOutOfRangeException(nameof(MergeHashMemoryBytes), MergeHashMemoryBytes, $"{nameof(MergeHashMemoryBytes)} must not be negative.");
        if (ChunkSize < 1) throw new ArgumentOutOfRangeException(nameof(ChunkSize), ChunkSize, $"{nameof(ChunkSize)} must be at least 1.");
        if (Parallelism is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(Parallelism), Parallelism, $"{nameof(Parallelism)} must be between 1 and 64.");
        if (UnnestThreshold is < 0 or > MaxUnnestThreshold)
            throw new ArgumentOutOfRangeException(nameof(UnnestThreshold), UnnestThreshold, $"{nameof(UnnestThreshold)} must be between 0 and {MaxUnnestThreshold:N0} (0 turns it off).");
        if (CommandTimeout != Timeout.InfiniteTimeSpan && (CommandTimeout <= TimeSpan.Zero || CommandTimeout > MaxCommandTimeout))
            throw new ArgumentOutOfRangeException(nameof(CommandTimeout), CommandTimeout,
                $"{nameof(CommandTimeout)} must be positive and at most {MaxCommandTimeout.TotalSeconds:N0} s, or Timeout.InfiniteTimeSpan for no limit (the default).");
        if (!Enum.IsDefined(Mode)) throw new ArgumentOutOfRangeException(nameof(Mode), Mode, "unknown mode");
    }

    /// <summary>The statement timeout in Npgsql's terms: whole seconds, 0 for none.</summary>
    internal int CommandTimeoutSeconds => CommandTimeout == Timeout.InfiniteTimeSpan ? 0 : (int)Math.Ceiling(CommandTimeout.TotalSeconds);

    /// <summary>The statement timeout as a COPY operation takes it.</summary>
    internal TimeSpan CopyTimeout => CommandTimeout == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(CommandTimeoutSeconds);

    /// <summary>
    /// The checks of <see cref="Validate"/>, and that nothing asks for commits of its own: inside the caller's
    /// transaction there is one transaction, on the caller's connection.
    /// </summary>
    internal void ValidateInsideTransaction()
    {
        Validate();
        if (Mode != PostgresBulkUpsertMode.Atomic)
            throw new ArgumentException($"{nameof(Mode)} = {Mode} commits in transactions of its own, which cannot happen inside the caller's transaction; use {nameof(PostgresBulkUpsertMode.Atomic)} there, or the overload that takes a data source.", nameof(Mode));
        if (ChunkSize != Default.ChunkSize)
            throw new ArgumentException($"{nameof(ChunkSize)} sets rows per commit, and inside the caller's transaction nothing is committed; leave it at its default there.", nameof(ChunkSize));
        if (Parallelism != Default.Parallelism)
            throw new ArgumentException($"{nameof(Parallelism)} sets connections, and inside the caller's transaction there is only the caller's; leave it at its default there.", nameof(Parallelism));
    }
}

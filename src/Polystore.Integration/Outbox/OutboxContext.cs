using Npgsql;

namespace Polystore.Integration.Outbox;

/// <summary>The transaction a batch of events is handled in, together with its checkpoint update.</summary>
public sealed class OutboxContext
{
    private readonly List<Func<CancellationToken, Task>> _afterCommit = [];

    internal OutboxContext(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Connection = connection;
        Transaction = transaction;
    }

    /// <summary>The open connection of the batch.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The batch's transaction; it also advances the subscriber's checkpoint.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>
    /// Runs <paramref name="action"/> after the batch commits (for example, invalidating cache keys, so a
    /// reader cannot re-cache the old value between the invalidation and the commit). A failure there is
    /// logged and counted, not retried: the cache entry's TTL bounds the staleness.
    /// </summary>
    public void AfterCommit(Func<CancellationToken, Task> action) => _afterCommit.Add(action);

    internal IReadOnlyList<Func<CancellationToken, Task>> AfterCommitActions => _afterCommit;
}

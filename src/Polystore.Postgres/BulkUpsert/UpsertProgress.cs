using System.Collections.Concurrent;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>What a bulk upsert has committed so far; shared by the connections of parallel mode.</summary>
internal sealed class UpsertProgress(string table)
{
    private readonly ConcurrentQueue<InDoubtCommit> _inDoubt = new();
    private long _rows, _inserted, _updated;
    private int _commits;
    private int _techniques;

    public long RowsCommitted => Interlocked.Read(ref _rows);
    public long Inserted => Interlocked.Read(ref _inserted);
    public long Updated => Interlocked.Read(ref _updated);
    public int Commits => Volatile.Read(ref _commits);

    /// <summary>How the committed batches were sent.</summary>
    public UpsertTechniques Techniques => (UpsertTechniques)Volatile.Read(ref _techniques);

    /// <summary>Transactions whose COMMIT outcome is not known (yet).</summary>
    public IReadOnlyCollection<InDoubtCommit> InDoubt => _inDoubt;

    public long RowsInDoubt => _inDoubt.Sum(c => c.Rows);

    public void Committed(long rows, long inserted, long updated, UpsertTechniques technique)
    {
        Interlocked.Add(ref _rows, rows);
        Interlocked.Add(ref _inserted, inserted);
        Interlocked.Add(ref _updated, updated);
        Interlocked.Increment(ref _commits);
        Interlocked.Or(ref _techniques, (int)technique);
        PostgresTelemetry.RecordRows(table, technique, rows, inserted, updated);
    }

    public void AddInDoubt(InDoubtCommit commit) => _inDoubt.Enqueue(commit);

    /// <summary>Takes every in-doubt commit out, to be settled (and put back if it cannot be).</summary>
    public List<InDoubtCommit> TakeInDoubt()
    {
        var taken = new List<InDoubtCommit>();
        while (_inDoubt.TryDequeue(out var c)) taken.Add(c);
        return taken;
    }
}

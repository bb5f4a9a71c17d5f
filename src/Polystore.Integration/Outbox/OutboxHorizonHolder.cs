namespace Polystore.Integration.Outbox;

/// <summary>
/// An open transaction that holds the xmin horizon back: the dispatcher delivers only events of transactions older than
/// the oldest one still running anywhere in the cluster, so while it is open no newer event is delivered.
/// </summary>
/// <param name="Pid">The backend's process id (<c>SELECT pg_terminate_backend(pid)</c> ends it); null for a prepared transaction.</param>
/// <param name="Database">The database it runs in.</param>
/// <param name="User">The role it runs as.</param>
/// <param name="ApplicationName">Its <c>application_name</c> (for a prepared transaction, its gid).</param>
/// <param name="State">Its state: <c>active</c>, <c>idle in transaction</c>, <c>prepared</c>, ...</param>
/// <param name="TransactionAge">How long the transaction has been open.</param>
/// <param name="Query">Its current or last statement, string literals masked and cut to 120 characters.</param>
public sealed record OutboxHorizonHolder(int? Pid, string Database, string User, string ApplicationName, string State, TimeSpan TransactionAge, string Query)
{
    /// <summary>One line for logs, health checks and the doctor.</summary>
    public override string ToString() =>
        $"{(Pid is { } pid ? $"pid {pid}" : "a prepared transaction")} ({User}@{Database}, application_name '{ApplicationName}', {State}, open {TransactionAge.TotalSeconds:0} s): {Query}";
}

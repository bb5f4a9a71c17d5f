namespace Polystore.Integration.Transactions;

/// <summary>Thrown when one store committed and a later one failed: the stores now disagree.</summary>
public sealed class PartialCommitException : Exception
{
    /// <summary>Creates the exception from the report.</summary>
    public PartialCommitException(CommitReport report, Exception? inner = null) : base(report.ToString(), inner) => Report = report;

    /// <summary>Creates the exception.</summary>
    public PartialCommitException() : this(new CommitReport([], null, null, [], [])) { }

    /// <summary>Creates the exception with a message.</summary>
    public PartialCommitException(string message) : base(message) => Report = new CommitReport([], null, message, [], []);

    /// <summary>Creates the exception with a message and a cause.</summary>
    public PartialCommitException(string message, Exception inner) : base(message, inner) => Report = new CommitReport([], null, message, [], []);

    /// <summary>Which store committed, which failed, and what was compensated.</summary>
    public CommitReport Report { get; }
}

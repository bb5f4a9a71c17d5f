namespace Polystore.Cli;

/// <summary>Exit codes every command shares, so scripts can branch on them.</summary>
internal static class ExitCodes
{
    /// <summary>Everything worked; nothing critical found.</summary>
    public const int Ok = 0;
    /// <summary>An unexpected failure (a bug, or an environment problem we did not foresee).</summary>
    public const int Failure = 1;
    /// <summary>The configuration (or the command line) is invalid; nothing was done.</summary>
    public const int InvalidConfig = 2;
    /// <summary>A configured store could not be reached.</summary>
    public const int Unreachable = 3;
    /// <summary><c>doctor</c> found at least one critical problem.</summary>
    public const int Critical = 4;
    /// <summary>What the command was asked to act on does not exist (for example an event that is not a dead letter).</summary>
    public const int NotFound = 5;
}

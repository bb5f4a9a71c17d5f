using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;
using StackExchange.Redis;

namespace Polystore.Integration.Transactions;

/// <summary>One unit of multi-store work; see <see cref="TransactionManager"/>.</summary>
public sealed class MultiStoreTransaction : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly List<(string Description, Func<CancellationToken, Task> Undo)> _compensations = [];
    private readonly List<ITransactionParticipant> _participants = [];
    private ITransaction? _redisTransaction;
    private bool _completed;
    private bool _postgresCommitted;

    internal MultiStoreTransaction(NpgsqlConnection connection, NpgsqlTransaction transaction, IDatabase? redis, ILogger logger)
    {
        _logger = logger;
        Postgres = connection;
        PostgresTransaction = transaction;
        Redis = redis;
    }

    /// <summary>The PostgreSQL connection; commands must use <see cref="PostgresTransaction"/>.</summary>
    public NpgsqlConnection Postgres { get; }

    /// <summary>The PostgreSQL transaction.</summary>
    public NpgsqlTransaction PostgresTransaction { get; }

    /// <summary>Redis, if configured. Its writes are not transactional: register a compensation for each.</summary>
    public IDatabase? Redis { get; }

    /// <summary>
    /// Enlists <paramref name="store"/>'s transaction, begun by <paramref name="begin"/> on first use and returned as is
    /// afterwards. Enlisted stores commit after PostgreSQL, in the order they were enlisted, before any Redis MULTI/EXEC.
    /// </summary>
    /// <exception cref="InvalidOperationException">The unit has already committed or rolled back.</exception>
    public async Task<T> EnlistAsync<T>(string store, Func<CancellationToken, Task<T>> begin, CancellationToken cancellationToken = default)
        where T : ITransactionParticipant
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(store);
        ArgumentNullException.ThrowIfNull(begin);
        if (_completed) throw new InvalidOperationException("the multi-store transaction has already ended");
        foreach (var enlisted in _participants)
            if (enlisted.Store == store)
                return enlisted is T same ? same : throw new InvalidOperationException($"{store} is already enlisted as {enlisted.GetType().Name}");
        var participant = await begin(cancellationToken).ConfigureAwait(false);
        _participants.Add(participant);
        return participant;
    }

    /// <summary>
    /// A Redis MULTI/EXEC transaction, executed after PostgreSQL and the enlisted stores commit. Queue commands on it
    /// (without awaiting them) and add conditions (WATCH); if a condition no longer holds at commit, the
    /// queued commands are discarded and the commit is reported as partial.
    /// </summary>
    /// <exception cref="InvalidOperationException">No Redis is configured.</exception>
    public ITransaction RedisTransaction =>
        _redisTransaction ??= (Redis ?? throw new InvalidOperationException("no Redis is configured for this TransactionManager")).CreateTransaction();

    /// <summary>Registers an undo step (a compensating action), run in reverse order if the unit fails.</summary>
    public void AddCompensation(string description, Func<CancellationToken, Task> undo) => _compensations.Add((description, undo));

    internal async Task<CommitReport> CommitAsync(CancellationToken cancellationToken)
    {
        var committed = new List<string>();
        try
        {
            await PostgresTransaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Nothing committed yet: a clean failure; undo the rest and let the cause surface as is.
            await RollbackAsync().ConfigureAwait(false);
            throw;
        }
        _postgresCommitted = true;
        committed.Add(StoreNames.Postgres);
        // From here on the unit is partly committed: the others commit whatever the caller's token does (each bounded
        // by its store's own timeouts), and any failure, of whatever type, is reported as a partial commit.
        foreach (var participant in _participants)
        {
            try
            {
                await participant.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                committed.Add(participant.Store);
            }
            catch (Exception e) when (!IsFatal(e))
            {
                // What PostgreSQL (and the stores before this one) committed stays; the later ones never commit.
                foreach (var later in _participants.SkipWhile(p => p != participant).Skip(1)) await AbortAsync(later).ConfigureAwait(false);
                var (run, failed) = await CompensateAsync().ConfigureAwait(false);
                _completed = true;
                throw new PartialCommitException(new CommitReport(committed, participant.Store, Redactor.RedactConnectionString(e.Message.Split('\n')[0]), run, failed), e);
            }
        }
        if (_redisTransaction is not null)
        {
            string? failure = null;
            Exception? cause = null;
            try
            {
                if (!await _redisTransaction.ExecuteAsync().ConfigureAwait(false)) failure = "a condition (WATCH) no longer held; the queued commands were discarded";
            }
            catch (Exception e) when (!IsFatal(e))
            {
                failure = Redactor.RedactConnectionString(e.Message);
                cause = e;
            }
            if (failure is not null)
            {
                var (run, failed) = await CompensateAsync().ConfigureAwait(false);
                _completed = true;
                throw new PartialCommitException(new CommitReport(committed, StoreNames.Redis, failure, run, failed), cause);
            }
            committed.Add(StoreNames.Redis);
        }
        _completed = true;
        return new CommitReport(committed, null, null, [], []);
    }

    private static bool IsFatal(Exception e) => e is OutOfMemoryException or StackOverflowException or AccessViolationException;

    internal async Task RollbackAsync()
    {
        if (_completed) return;
        _completed = true;
        // Best effort: the work's own exception is what the caller sees; these only go to the log.
        if (!_postgresCommitted)
        {
            try { await PostgresTransaction.RollbackAsync().ConfigureAwait(false); }
            catch (Exception e) when (e is NpgsqlException or IOException) { _logger.TransactionRollbackFailed(Redactor.Redact(e), StoreNames.Postgres); }
        }
        foreach (var participant in _participants) await AbortAsync(participant).ConfigureAwait(false);
        await CompensateAsync().ConfigureAwait(false);
    }

    private async Task AbortAsync(ITransactionParticipant participant)
    {
        try { await participant.AbortAsync().ConfigureAwait(false); }
        catch (Exception e) when (e is TimeoutException || participant.IsStoreFailure(e)) { _logger.TransactionRollbackFailed(Redactor.Redact(e), participant.Store); }
    }

    private async Task<(List<string> Run, List<string> Failed)> CompensateAsync()
    {
        var run = new List<string>();
        var failed = new List<string>();
        for (var i = _compensations.Count - 1; i >= 0; i--)
        {
            var (description, undo) = _compensations[i];
            try
            {
                await undo(CancellationToken.None).ConfigureAwait(false);
                run.Add(description);
            }
            catch (Exception e) when (!IsFatal(e))
            {
                // One undo failing (a store, an external API) must not stop the others, nor hide the partial commit.
                _logger.TransactionCompensationFailed(Redactor.Redact(e), description);
                failed.Add($"{description}: {Redactor.RedactConnectionString(e.Message)}");
            }
        }
        _compensations.Clear();
        return (run, failed);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_completed) await RollbackAsync().ConfigureAwait(false);
        foreach (var participant in _participants) participant.Dispose();
        await PostgresTransaction.DisposeAsync().ConfigureAwait(false);
    }
}

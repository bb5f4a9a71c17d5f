using Microsoft.Extensions.Logging;
using MongoDB.Driver;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;
using StackExchange.Redis;

namespace Polystore.Integration.Transactions;

/// <summary>One unit of multi-store work; see <see cref="TransactionManager"/>.</summary>
public sealed class MultiStoreTransaction : IAsyncDisposable
{
    private readonly IMongoClient? _mongo;
    private readonly ILogger _logger;
    private readonly List<(string Description, Func<CancellationToken, Task> Undo)> _compensations = [];
    private IClientSessionHandle? _mongoSession;
    private ITransaction? _redisTransaction;
    private bool _completed;

    internal MultiStoreTransaction(NpgsqlConnection connection, NpgsqlTransaction transaction, IMongoClient? mongo, IDatabase? redis, ILogger logger)
    {
        _logger = logger;
        Postgres = connection;
        PostgresTransaction = transaction;
        _mongo = mongo;
        Redis = redis;
    }

    /// <summary>The PostgreSQL connection; commands must use <see cref="PostgresTransaction"/>.</summary>
    public NpgsqlConnection Postgres { get; }

    /// <summary>The PostgreSQL transaction.</summary>
    public NpgsqlTransaction PostgresTransaction { get; }

    /// <summary>Redis, if configured. Its writes are not transactional: register a compensation for each.</summary>
    public IDatabase? Redis { get; }

    /// <summary>The MongoDB session with a started transaction (replica set or mongos only).</summary>
    /// <exception cref="InvalidOperationException">No MongoDB is configured.</exception>
    public async Task<IClientSessionHandle> GetMongoSessionAsync(CancellationToken cancellationToken = default)
    {
        if (_mongoSession is not null) return _mongoSession;
        if (_mongo is null) throw new InvalidOperationException("no MongoDB is configured for this TransactionManager");
        _mongoSession = await _mongo.StartSessionAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        _mongoSession.StartTransaction();
        return _mongoSession;
    }

    /// <summary>
    /// A Redis MULTI/EXEC transaction, executed after PostgreSQL and MongoDB commit. Queue commands on it
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
        committed.Add(StoreNames.Postgres);
        if (_mongoSession is not null)
        {
            try
            {
                await _mongoSession.CommitTransactionAsync(cancellationToken).ConfigureAwait(false);
                committed.Add(StoreNames.Mongo);
            }
            catch (Exception e) when (e is MongoException or TimeoutException or InvalidOperationException)
            {
                var (run, failed) = await CompensateAsync().ConfigureAwait(false);
                _completed = true;
                throw new PartialCommitException(new CommitReport(committed, StoreNames.Mongo, Redactor.RedactUrl(e.Message.Split('\n')[0]), run, failed), e);
            }
        }
        if (_redisTransaction is not null)
        {
            string? failure = null;
            try
            {
                if (!await _redisTransaction.ExecuteAsync().ConfigureAwait(false)) failure = "a condition (WATCH) no longer held; the queued commands were discarded";
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                failure = Redactor.RedactConnectionString(e.Message);
            }
            if (failure is not null)
            {
                var (run, failed) = await CompensateAsync().ConfigureAwait(false);
                _completed = true;
                throw new PartialCommitException(new CommitReport(committed, StoreNames.Redis, failure, run, failed));
            }
            committed.Add(StoreNames.Redis);
        }
        _completed = true;
        return new CommitReport(committed, null, null, [], []);
    }

    internal async Task RollbackAsync()
    {
        if (_completed) return;
        _completed = true;
        // Best effort: the work's own exception is what the caller sees; these only go to the log.
        try { await PostgresTransaction.RollbackAsync().ConfigureAwait(false); }
        catch (Exception e) when (e is NpgsqlException or IOException) { _logger.TransactionRollbackFailed(e, StoreNames.Postgres); }
        if (_mongoSession is { IsInTransaction: true })
        {
            try { await _mongoSession.AbortTransactionAsync().ConfigureAwait(false); }
            catch (Exception e) when (e is MongoException or TimeoutException) { _logger.TransactionRollbackFailed(e, StoreNames.Mongo); }
        }
        await CompensateAsync().ConfigureAwait(false);
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
            catch (Exception e) when (e is RedisException or TimeoutException or InvalidOperationException or NpgsqlException or MongoException)
            {
                _logger.TransactionCompensationFailed(e, description);
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
        _mongoSession?.Dispose();
        await PostgresTransaction.DisposeAsync().ConfigureAwait(false);
    }
}

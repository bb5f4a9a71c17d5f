using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core;

namespace Polystore.Mongo;

/// <summary>One document to upsert: <c>UpdateOne({_id: Id}, {$set: Data}, upsert: true)</c>.</summary>
/// <param name="Id">The <c>_id</c> of the document.</param>
/// <param name="Data">The fields to set; field names must not start with <c>$</c>.</param>
public sealed record UpsertItem(BsonValue Id, BsonDocument Data);

/// <summary>Options of <see cref="MongoBulkUpsert.UpsertAsync"/>.</summary>
public sealed record MongoBulkUpsertOptions
{
    /// <summary>Items per <c>bulkWrite</c> call (1..100,000, the server's maxWriteBatchSize). Default 1,000.</summary>
    public int BatchSize { get; init; } = 1000;

    /// <summary>
    /// Where refused items and write concern errors are logged (as warnings). Null (the default): the factory in the
    /// client's <c>LoggingSettings</c> (see <see cref="MongoDriverSettings.Build"/>), else nothing.
    /// </summary>
    public ILoggerFactory? LoggerFactory { get; init; }
}

/// <summary>One item the server refused.</summary>
/// <param name="Index">Position of the item in the caller's input list.</param>
/// <param name="Id">Its <c>_id</c>.</param>
/// <param name="Code">The server's error code (0 when the driver left the item unprocessed).</param>
/// <param name="Message">The server's message.</param>
public sealed record MongoBulkUpsertFailure(int Index, BsonValue Id, int Code, string Message);

/// <summary>The outcome of a bulk upsert: counts over all batches and every item that failed.</summary>
/// <param name="Matched">Documents that existed and matched their <c>_id</c>.</param>
/// <param name="Modified">Matched documents actually changed (a $set to equal values is not a modification).</param>
/// <param name="Upserted">Documents inserted because no document had the <c>_id</c>.</param>
/// <param name="Batches">bulkWrite calls made.</param>
/// <param name="Failures">Every refused item, in input order.</param>
/// <param name="WriteConcernErrors">Write concern errors, one per affected batch (the writes may still have applied).</param>
public sealed record MongoBulkUpsertResult(long Matched, long Modified, long Upserted, int Batches,
    IReadOnlyList<MongoBulkUpsertFailure> Failures, IReadOnlyList<string> WriteConcernErrors)
{
    /// <summary>True when no item failed and no write concern error was reported.</summary>
    public bool Succeeded => Failures.Count == 0 && WriteConcernErrors.Count == 0;
}

/// <summary>Thrown when a batch fails as a whole (network, timeout, auth): earlier batches are written, later ones are not sent.</summary>
public sealed class MongoBulkUpsertException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MongoBulkUpsertException(string message, MongoBulkUpsertResult partial, int firstUncertainIndex, Exception inner)
        : base(message, inner)
    {
        Partial = partial;
        FirstUncertainIndex = firstUncertainIndex;
    }

    /// <summary>Counts and failures of the batches that completed.</summary>
    public MongoBulkUpsertResult Partial { get; }

    /// <summary>Input index from which the outcome is unknown (the failed batch may be partly applied; later items were not sent).</summary>
    public int FirstUncertainIndex { get; }
}

/// <summary>Bulk upserts by <c>_id</c> into a MongoDB collection: unordered batches, with counts and a failure report.</summary>
public static class MongoBulkUpsert
{
    /// <summary>The most operations one bulkWrite may hold (the server's maxWriteBatchSize).</summary>
    public const int MaxBatchSize = 100_000;

    /// <summary>
    /// Validates every item (nothing is sent when any is bad), then sends <c>UpdateOne</c> upserts, unordered,
    /// <see cref="MongoBulkUpsertOptions.BatchSize"/> at a time. Per-item failures do not stop the run: unordered writes
    /// apply every other item, and each failure is reported with its input index.
    /// </summary>
    public static async Task<MongoBulkUpsertResult> UpsertAsync(IMongoCollection<BsonDocument> collection, IReadOnlyList<UpsertItem> items,
        MongoBulkUpsertOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(collection);
        options ??= new MongoBulkUpsertOptions();
        Validate(items, options);
        // Counts only exist for acknowledged writes; refuse w:0 rather than report zeros.
        if (!collection.Settings.WriteConcern.IsAcknowledged)
            throw new InvalidOperationException("bulk upsert needs an acknowledged write concern (w >= 1) to report counts and failures; the collection uses w:0");

        var started = Stopwatch.GetTimestamp();
        var collectionName = collection.CollectionNamespace.CollectionName;
        using var activity = MongoStoreTelemetry.Start("bulk_upsert", collectionName, collection.Database);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("polystore.bulk_upsert.items", items.Count);
            activity.SetTag("polystore.bulk_upsert.batch_size", options.BatchSize);
        }
        try
        {
            var result = await RunAsync(collection, items, options, cancellationToken).ConfigureAwait(false);
            MongoStoreTelemetry.RecordDuration(MongoStoreTelemetry.BulkUpsertSeconds, Stopwatch.GetElapsedTime(started), collectionName, null);
            MongoStoreTelemetry.RecordDocuments(collectionName, result.Upserted, result.Modified, result.Matched - result.Modified, result.Failures.Count);
            if (activity is { IsAllDataRequested: true })
            {
                activity.SetTag("polystore.bulk_upsert.batches", result.Batches);
                activity.SetTag("polystore.bulk_upsert.matched", result.Matched);
                activity.SetTag("polystore.bulk_upsert.modified", result.Modified);
                activity.SetTag("polystore.bulk_upsert.upserted", result.Upserted);
                activity.SetTag("polystore.bulk_upsert.failed", result.Failures.Count);
                activity.SetTag("polystore.bulk_upsert.write_concern_errors", result.WriteConcernErrors.Count);
            }
            if (!result.Succeeded)
            {
                var logger = (options.LoggerFactory ?? collection.Database.Client?.Settings.LoggingSettings?.LoggerFactory)?.CreateLogger(MongoLog.BulkUpsertCategory) ?? NullLogger.Instance;
                if (result.Failures is [var first, ..]) logger.BulkUpsertItemsRefused(collectionName, result.Failures.Count, items.Count, first.Index, first.Code);
                if (result.WriteConcernErrors is [var error, ..]) logger.BulkUpsertWriteConcernErrors(collectionName, result.WriteConcernErrors.Count, error);
            }
            return result;
        }
        catch (Exception e)
        {
            MongoStoreTelemetry.RecordDuration(MongoStoreTelemetry.BulkUpsertSeconds, Stopwatch.GetElapsedTime(started), collectionName, e);
            if (e is MongoBulkUpsertException { Partial: var partial })
                MongoStoreTelemetry.RecordDocuments(collectionName, partial.Upserted, partial.Modified, partial.Matched - partial.Modified, partial.Failures.Count);
            MongoStoreTelemetry.Fail(activity, e);
            throw;
        }
    }

    private static async Task<MongoBulkUpsertResult> RunAsync(IMongoCollection<BsonDocument> collection, IReadOnlyList<UpsertItem> items,
        MongoBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        long matched = 0, modified = 0, upserted = 0;
        var failures = new List<MongoBulkUpsertFailure>();
        var writeConcernErrors = new List<string>();
        var batches = 0;
        var bulkOptions = new BulkWriteOptions { IsOrdered = false };
        foreach (var (start, count) in BatchRanges(items.Count, options.BatchSize))
        {
            var models = BuildModelList(items, start, count);
            batches++;
            try
            {
                var result = await collection.BulkWriteAsync(models, bulkOptions, cancellationToken).ConfigureAwait(false);
                (matched, modified, upserted) = (matched + result.MatchedCount, modified + result.ModifiedCount, upserted + result.Upserts.Count);
            }
            catch (MongoBulkWriteException<BsonDocument> e)
            {
                // Unordered: the server applied every item but the failed ones; count those and report the rest.
                if (e.Result.IsAcknowledged)
                    (matched, modified, upserted) = (matched + e.Result.MatchedCount, modified + e.Result.ModifiedCount, upserted + e.Result.Upserts.Count);
                failures.AddRange(MapFailures(items, start, e.WriteErrors.Select(w => (w.Index, w.Code, w.Message))));
                var unprocessed = e.UnprocessedRequests.Select(r => models.IndexOf(r)).Where(i => i >= 0);
                failures.AddRange(MapFailures(items, start, unprocessed.Select(i => (i, 0, "not processed by the server (the batch stopped before this item)"))));
                if (e.WriteConcernError is { } wce)
                    writeConcernErrors.Add(string.Create(CultureInfo.InvariantCulture, $"batch {batches} (items {start}..{start + count - 1}): code {wce.Code}: {wce.Message}"));
            }
            catch (Exception e) when (e is MongoException or TimeoutException)
            {
                var partial = new MongoBulkUpsertResult(matched, modified, upserted, batches - 1, Sorted(failures), writeConcernErrors);
                throw new MongoBulkUpsertException(
                    string.Create(CultureInfo.InvariantCulture,
                        $"bulk upsert stopped at batch {batches}: items {start}..{start + count - 1} may be partly written and items from {start + count} were not sent ({items.Count} in all); {Redactor.RedactConnectionString(e.Message)}"),
                    partial, start, e);
            }
        }
        return new MongoBulkUpsertResult(matched, modified, upserted, batches, Sorted(failures), writeConcernErrors);
    }

    /// <summary>(start, count) of each batch.</summary>
    internal static IEnumerable<(int Start, int Count)> BatchRanges(int total, int batchSize)
    {
        for (var start = 0; start < total; start += batchSize) yield return (start, Math.Min(batchSize, total - start));
    }

    /// <summary>The write models of items <paramref name="start"/>..start+count-1, exactly as <see cref="UpsertAsync"/> sends them.</summary>
    public static IReadOnlyList<WriteModel<BsonDocument>> BuildModels(IReadOnlyList<UpsertItem> items, int start, int count)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, items.Count, nameof(count));
        return BuildModelList(items, start, count);
    }

    private static List<WriteModel<BsonDocument>> BuildModelList(IReadOnlyList<UpsertItem> items, int start, int count)
    {
        var models = new List<WriteModel<BsonDocument>>(count);
        for (var i = start; i < start + count; i++)
        {
            var filter = new BsonDocumentFilterDefinition<BsonDocument>(new BsonDocument("_id", items[i].Id));
            var update = new BsonDocumentUpdateDefinition<BsonDocument>(new BsonDocument("$set", items[i].Data.DeepClone()));
            models.Add(new UpdateOneModel<BsonDocument>(filter, update) { IsUpsert = true });
        }
        return models;
    }

    /// <summary>Turns batch-relative error indexes into the caller's indexes and ids.</summary>
    internal static IEnumerable<MongoBulkUpsertFailure> MapFailures(IReadOnlyList<UpsertItem> items, int batchStart, IEnumerable<(int Index, int Code, string Message)> errors) =>
        errors.Select(e => new MongoBulkUpsertFailure(batchStart + e.Index, items[batchStart + e.Index].Id, e.Code, e.Message));

    /// <summary>Every problem with the input, or nothing; throws before anything is sent.</summary>
    internal static void Validate(IReadOnlyList<UpsertItem>? items, MongoBulkUpsertOptions options)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (options.BatchSize is < 1 or > MaxBatchSize)
            throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, $"BatchSize must be 1..{MaxBatchSize}");
        var problems = new List<string>();
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            if (item is null) { problems.Add($"items[{i}]: is null"); continue; }
            var where = $"items[{i}] (_id {Show(item.Id)})";
            if (item.Id is null || item.Id.IsBsonNull) problems.Add($"items[{i}]: _id is null");
            else if (item.Id.IsBsonArray) problems.Add($"{where}: _id cannot be an array");
            // The _id becomes the filter { _id: value }: a regex, or a document the server reads as operators, would
            // match other documents, and the upsert would overwrite them.
            else if (item.Id is BsonRegularExpression or BsonUndefined) problems.Add($"{where}: _id cannot be a {item.Id.BsonType}: the filter would match other documents");
            else if (item.Id is BsonDocument idDocument) CheckIdDocument(idDocument, where, problems);
            if (item.Data is null) { problems.Add($"{where}: data is null"); continue; }
            if (item.Data.ElementCount == 0) problems.Add($"{where}: data is empty: nothing to $set");
            foreach (var element in item.Data)
            {
                if (element.Name == "_id")
                {
                    if (item.Id is not null && !element.Value.Equals(item.Id))
                        problems.Add($"{where}: data._id is {Show(element.Value)}, which differs from the _id; _id is immutable");
                    continue;
                }
                CheckNames(element.Name, element.Value, $"{where}: data", problems);
            }
        }
        if (problems.Count == 0) return;
        const int shown = 20;
        var message = $"bulk upsert refused, nothing was sent: {problems.Count} problem{(problems.Count == 1 ? "" : "s")} in the input:{Environment.NewLine}  "
            + string.Join(Environment.NewLine + "  ", problems.Take(shown))
            + (problems.Count > shown ? $"{Environment.NewLine}  ... and {problems.Count - shown} more" : "");
        throw new ArgumentException(message, nameof(items));
    }

    // $-prefixed names would be read as update operators (top level) or are refused in stored documents (nested).
    private static void CheckNames(string name, BsonValue value, string path, List<string> problems)
    {
        var full = $"{path}.{name}";
        if (name.Length == 0) problems.Add($"{path}: has an empty field name");
        else if (name.Split('.').Any(part => part.StartsWith('$'))) problems.Add($"{full}: field name starts with '$'");
        else if (name.Contains('\0', StringComparison.Ordinal)) problems.Add($"{path}: field name contains a NUL character");
        CheckChildren(value, full, problems);
    }

    // Documents at any depth, arrays of arrays included.
    private static void CheckChildren(BsonValue value, string path, List<string> problems)
    {
        if (value is BsonDocument doc)
            foreach (var child in doc) CheckNames(child.Name, child.Value, path, problems);
        else if (value is BsonArray array)
            foreach (var entry in array) CheckChildren(entry, path + "[]", problems);
    }

    private static void CheckIdDocument(BsonDocument id, string where, List<string> problems)
    {
        foreach (var element in id) CheckNames(element.Name, element.Value, $"{where}: _id", problems);
    }

    private static string Show(BsonValue? value) => value is null ? "null" : value.ToJson();


    private static IReadOnlyList<MongoBulkUpsertFailure> Sorted(List<MongoBulkUpsertFailure> failures) => [.. failures.OrderBy(f => f.Index)];
}

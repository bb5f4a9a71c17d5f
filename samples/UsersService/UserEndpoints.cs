using Microsoft.OpenApi;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Npgsql;
using Polystore.Postgres.Querying;
using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>The /users endpoints: commands on the primary (row and outbox event in one transaction), queries on replicas and the read model.</summary>
internal static class UserEndpoints
{
    private const string Json = "application/json";
    private const string MergePatchJson = "application/merge-patch+json";
    private const int DefaultPageSize = 50;
    private const int DefaultTop = 10;

    public static void Map(IEndpointRouteBuilder api)
    {
        var users = api.MapGroup("/users").WithTags("Users");
        users.MapPost("", CreateAsync).WithName("CreateUser")
            .WithSummary("Creates a user: the row and its user.created event in one transaction.")
            .Accepts<CreateUserRequest>(Json)
            .Produces<UserResponse>(StatusCodes.Status201Created).ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        users.MapGet("/{id}", GetAsync).WithName("GetUser")
            .WithSummary("The user as PostgreSQL holds it now (no projection lag); ETag is the version, for If-Match.")
            .Produces<UserResponse>().Produces(StatusCodes.Status304NotModified).ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        users.MapPatch("/{id}", PatchAsync).WithName("UpdateUser")
            .WithSummary("Changes a user's name and/or region; If-Match must carry the version (ETag) the change is based on.")
            .Accepts<PatchUserRequest>(Json, MergePatchJson)
            .Produces<UserResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status412PreconditionFailed).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status428PreconditionRequired);
        api.MapPost("/users:bulk", BulkAsync).WithTags("Users").WithName("BulkUpsertUsers")
            .WithSummary("Inserts or updates users by e-mail from a JSON array or an NDJSON stream of any length, all or nothing.")
            .Accepts<CreateUserRequest[]>(BulkInput.Json, BulkInput.Ndjson)
            .Produces<BulkUpsertResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        users.MapGet("", ListAsync).WithName("ListUsers")
            .WithSummary("A page of users in id order; pass 'next' back as 'after'. Cursors are signed: a changed one is refused with 400, and so is any other query parameter.")
            .Produces<UserPageResponse>().ProducesValidationProblem()
            .WithQuery("limit", JsonSchemaType.Integer, $"Users per page, 1 to {UserQueries.MaxPageSize} (default {DefaultPageSize}).")
            .WithQuery("after", JsonSchemaType.String, "The 'next' cursor of the previous page, exactly as returned.");
        users.MapGet("/ranked", RankedAsync).WithName("RankUsers")
            .WithSummary("The users with the highest order totals (RANK, DENSE_RANK, PERCENT_RANK).")
            .Produces<RankedUserResponse[]>().ProducesValidationProblem()
            .WithQuery("top", JsonSchemaType.Integer, $"How many ranks to return, 1 to {UserQueries.MaxPageSize} (default {DefaultTop}).");
        users.MapGet("/{id}/profile", ProfileAsync).WithName("GetUserProfile")
            .WithSummary("The user's profile from the read model, through the Redis cache; ETag is the version. It follows a write within the projection lag.")
            .Produces<UserResponse>().Produces(StatusCodes.Status304NotModified).ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> CreateAsync(HttpContext context, UsersApp users, CancellationToken cancellationToken)
    {
        var (body, problem) = await RequestJson.ReadAsync(context.Request, cancellationToken, Json);
        if (problem is not null) return problem;
        var errors = new InputErrors();
        if (UserInput.ReadCreate(body, "", errors) is not { } command) return Problems.Validation(errors.ToDictionary());
        UserProfile created;
        try
        {
            created = await users.Commands.CreateUserProfileAsync(command, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return Problems.Conflict("a user with this e-mail address exists already.", "email");
        }
        context.Response.Headers.ETag = ETags.Of(created.Version);
        return TypedResults.Created($"/users/{created.Id.ToString(CultureInfo.InvariantCulture)}", UserResponse.From(created));
    }

    private static async Task<IResult> GetAsync(string id, HttpContext context, UsersApp users, CancellationToken cancellationToken)
    {
        var errors = new InputErrors();
        if (UserInput.ReadId(id, "id", errors) is not { } userId) return Problems.Validation(errors.ToDictionary());
        if (await users.Commands.GetUserAsync(userId, cancellationToken) is not { } user) return Problems.NotFound($"no user with id {userId}.");
        context.Response.Headers.ETag = ETags.Of(user.Version);
        if (ETags.NoneMatch(context.Request.Headers.IfNoneMatch, user.Version)) return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        return TypedResults.Ok(UserResponse.From(user));
    }

    private static async Task<IResult> PatchAsync(string id, HttpContext context, UsersApp users, CancellationToken cancellationToken)
    {
        var errors = new InputErrors();
        if (UserInput.ReadId(id, "id", errors) is not { } userId) return Problems.Validation(errors.ToDictionary());
        var ifMatch = context.Request.Headers.IfMatch;
        if (ifMatch.Count == 0)
            return Problems.PreconditionRequired("send If-Match with the user's ETag (its version, from GET /users/{id} or the last write) so a concurrent change is not overwritten.");
        if (ETags.ParseIfMatch(ifMatch) is not { } parsed)
            return Problems.Validation("If-Match", "must be * or a comma-separated list of quoted entity tags, such as \"3\" (the user's ETag).");
        var (any, versions) = parsed;
        var (body, problem) = await RequestJson.ReadAsync(context.Request, cancellationToken, Json, MergePatchJson);
        if (problem is not null) return problem;
        if (UserInput.ReadPatch(body, errors) is not { } change) return Problems.Validation(errors.ToDictionary());

        var update = new UpdateUser(userId, change.Name, change.Region);
        // '*' matches whatever version the user is at: one update, no version check (RFC 9110 13.1.1).
        var updated = any ? await users.Commands.UpdateUserProfileAsync(update, cancellationToken) : null;
        if (any && updated is null) return Problems.NotFound($"no user with id {userId}.");
        for (var attempt = 1; updated is null; attempt++)
        {
            long? current = null;
            if (versions.Count != 1)
            {
                // Several tags: find the current version first and update only from it.
                current = await users.Commands.GetVersionAsync(userId, cancellationToken);
                if (current is null) return Problems.NotFound($"no user with id {userId}.");
                if (!versions.Contains(current.Value)) return Stale(context, userId, current.Value);
            }
            updated = await users.Commands.TryUpdateUserAsync(update, current ?? versions[0], cancellationToken);
            if (updated is not null) break;
            current = await users.Commands.GetVersionAsync(userId, cancellationToken);
            if (current is null) return Problems.NotFound($"no user with id {userId}.");
            // Another write came between the read and the update, to a version the tags still name: go again.
            if (!versions.Contains(current.Value) || attempt == MaxIfMatchAttempts) return Stale(context, userId, current.Value);
        }
        context.Response.Headers.ETag = ETags.Of(updated.Version);
        return TypedResults.Ok(UserResponse.From(updated));
    }

    private const int MaxIfMatchAttempts = 3;

    private static IResult Stale(HttpContext context, long userId, long current)
    {
        context.Response.Headers.ETag = ETags.Of(current);
        return Problems.PreconditionFailed($"user {userId} is at version {current}, which If-Match does not name: read it again and reapply the change.", current);
    }

    private static async Task<IResult> BulkAsync(HttpContext context, UsersApp users, UsersServiceOptions options, CancellationToken cancellationToken)
    {
        var request = context.Request;
        IAsyncEnumerable<CreateUser> rows;
        if (RequestJson.HasMediaType(request, BulkInput.Ndjson)) rows = BulkInput.ReadLinesAsync(request.BodyReader, cancellationToken);
        else if (RequestJson.HasMediaType(request, BulkInput.Json)) rows = BulkInput.ReadArrayAsync(request.Body, cancellationToken);
        else return Problems.UnsupportedMediaType(request.ContentType, [BulkInput.Json, BulkInput.Ndjson]);
        if (RequestJson.NotUtf8(request) is { } charset) return charset;
        // Any length: the rows stream through in chunks, so the server-wide body limit does not apply here.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = null;
        try
        {
            var counts = await users.Commands.UpsertUsersAsync(rows, options.BulkChunkSize, cancellationToken);
            return TypedResults.Ok(new BulkUpsertResponse(counts.Received, counts.Inserted, counts.Updated, counts.Unchanged));
        }
        catch (BulkInputException e)
        {
            return TypedResults.ValidationProblem(e.Errors.ToDictionary(), "Nothing was written: the rows before this one were rolled back.", title: "A row of the request is invalid.");
        }
    }

    private static async Task<IResult> ListAsync(HttpContext context, UsersApp users, UserQueries queries, UsersServiceOptions options, CancellationToken cancellationToken)
    {
        var query = context.Request.Query;
        var errors = new InputErrors();
        UnknownParameters(query, errors, "limit", "after");
        var limit = ReadCount(query["limit"], "limit", DefaultPageSize, UserQueries.MaxPageSize, errors);
        var after = query["after"];
        if (after.Count > 1) errors.Add("after", "give one cursor.");
        if (errors.Any) return Problems.Validation(errors.ToDictionary());
        var cursor = string.IsNullOrEmpty(after.ToString()) ? null : after.ToString();
        KeysetPage<UserResponse> page;
        try
        {
            page = await queries.Pages.PageAsync(Reads(users, options), cursor, limit, UserQueries.ReadUser, cancellationToken);
        }
        catch (InvalidCursorException e)
        {
            return Problems.Validation("after", e.Message);
        }
        var nextLink = page.NextCursor is null ? null
            : $"/users?after={Uri.EscapeDataString(page.NextCursor)}&limit={limit.ToString(CultureInfo.InvariantCulture)}";
        return TypedResults.Ok(new UserPageResponse(page.Items, page.NextCursor, nextLink));
    }

    private static async Task<IResult> RankedAsync(HttpContext context, UsersApp users, UserQueries queries, UsersServiceOptions options, CancellationToken cancellationToken)
    {
        var errors = new InputErrors();
        UnknownParameters(context.Request.Query, errors, "top");
        var top = ReadCount(context.Request.Query["top"], "top", DefaultTop, UserQueries.MaxPageSize, errors);
        if (errors.Any) return Problems.Validation(errors.ToDictionary());
        var ranked = await queries.Ranking(top).ExecuteAsync(Reads(users, options), UserQueries.ReadTotals, cancellationToken);
        return TypedResults.Ok(ranked.Select(r => new RankedUserResponse(r.Row.UserId, r.Row.OrderCount, r.Row.OrderTotal, r.Rank, r.DenseRank, r.PercentRank)).ToList());
    }

    private static async Task<IResult> ProfileAsync(string id, HttpContext context, IProfileSource profiles, CancellationToken cancellationToken)
    {
        var errors = new InputErrors();
        if (UserInput.ReadId(id, "id", errors) is not { } userId) return Problems.Validation(errors.ToDictionary());
        var (profile, fromCache) = await profiles.GetAsync(userId, cancellationToken);
        if (profile is null)
            return Problems.NotFound($"no profile for user {userId}: no such user, or it was created so recently that the projection has not reached it yet.");
        context.Response.Headers.ETag = ETags.Of(profile.Version);
        context.Response.Headers["X-Cache"] = fromCache ? "hit" : "miss";
        if (ETags.NoneMatch(context.Request.Headers.IfNoneMatch, profile.Version)) return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        return TypedResults.Ok(UserResponse.From(profile));
    }

    private static NpgsqlDataSource Reads(UsersApp users, UsersServiceOptions options) => options.ReadFromReplicas ? users.Sources.Reads : users.Sources.Primary;

    /// <summary>
    /// Refuses query parameters the endpoint does not read, like unknown body fields: a guessed <c>pageSize=-1</c> or
    /// <c>offset=100</c> would otherwise be ignored without a word and the client would take the default page for its own.
    /// </summary>
    private static void UnknownParameters(IQueryCollection query, InputErrors errors, params string[] known)
    {
        foreach (var key in query.Keys)
            if (!known.Contains(key, StringComparer.OrdinalIgnoreCase))
                errors.Add(key, $"is not a query parameter of this endpoint (expected {string.Join(", ", known)}).");
    }

    /// <summary>A count from the query string: <paramref name="fallback"/> when absent, else an integer in 1..<paramref name="max"/>.</summary>
    private static int ReadCount(Microsoft.Extensions.Primitives.StringValues values, string field, int fallback, int max, InputErrors errors)
    {
        if (values.Count == 0) return fallback;
        if (values.Count == 1 && int.TryParse(values[0], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= max) return n;
        errors.Add(field, $"must be one integer from 1 to {max.ToString(CultureInfo.InvariantCulture)}.");
        return fallback;
    }
}

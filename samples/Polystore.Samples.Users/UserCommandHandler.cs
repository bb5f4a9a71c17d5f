using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using Polystore.Integration.Outbox;

namespace Polystore.Samples.Users;

/// <summary>
/// Handles the user commands. Each command changes the <c>users</c> row and appends its event to the
/// outbox in one PostgreSQL statement, so the event exists if and only if the change committed; the
/// outbox dispatcher then delivers it to the projections.
/// </summary>
public sealed class UserCommandHandler
{
    /// <summary>The outbox stream of user events.</summary>
    public const string Stream = "user";
    /// <summary>Event type of a new user.</summary>
    public const string UserCreated = "user.created";
    /// <summary>Event type of a changed user.</summary>
    public const string UserUpdated = "user.updated";

    private readonly NpgsqlDataSource _dataSource;
    private readonly OutboxStore _outbox;
    private readonly string _schema;
    private readonly string _users;

    /// <summary>Creates the handler over <c>schema.users</c>, beside the outbox in the same schema.</summary>
    public UserCommandHandler(NpgsqlDataSource dataSource, OutboxStore outbox)
    {
        ArgumentNullException.ThrowIfNull(outbox);
        _dataSource = dataSource;
        _outbox = outbox;
        // OutboxStore accepts only plain lower-case identifiers, so quoting needs no escaping.
        _schema = $"\"{outbox.Schema}\"";
        _users = $"{_schema}.users";
    }

    /// <summary>Creates the users table (and the outbox) if missing.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        await _outbox.EnsureCreatedAsync(_dataSource, cancellationToken).ConfigureAwait(false);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(
                $"""
                CREATE TABLE IF NOT EXISTS {_users} (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    email text NOT NULL UNIQUE,
                    name text NOT NULL,
                    region text NOT NULL,
                    version bigint NOT NULL DEFAULT 1,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now())
                """, connection);
            await using (command.ConfigureAwait(false)) await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Creates a user and appends <c>user.created</c> atomically; returns the new id.</summary>
    public async Task<long> CreateUserAsync(CreateUser command, CancellationToken cancellationToken = default) =>
        (await CreateUserProfileAsync(command, cancellationToken).ConfigureAwait(false)).Id;

    /// <summary>Creates a user and appends <c>user.created</c> atomically, like <see cref="CreateUserAsync"/>; returns the row as written.</summary>
    public async Task<UserProfile> CreateUserProfileAsync(CreateUser command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentException.ThrowIfNullOrWhiteSpace(command.Email, nameof(command.Email));
        ArgumentException.ThrowIfNullOrWhiteSpace(command.Name, nameof(command.Name));
        ArgumentNullException.ThrowIfNull(command.Region, nameof(command.Region));
        return (await ExecuteAsync(
            $"INSERT INTO {_users} (email, name, region) VALUES ($2, $3, $4) RETURNING *", UserCreated,
            [command.Email, command.Name, command.Region], cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Updates a user, bumps its version and appends <c>user.updated</c> atomically; returns the new version.</summary>
    /// <exception cref="KeyNotFoundException">No user has <see cref="UpdateUser.Id"/>.</exception>
    public async Task<long> UpdateUserAsync(UpdateUser command, CancellationToken cancellationToken = default)
    {
        var profile = await UpdateUserProfileAsync(command, cancellationToken).ConfigureAwait(false);
        return profile?.Version ?? throw new KeyNotFoundException($"no user with id {command.Id}");
    }

    /// <summary>
    /// Updates a user whatever its version (If-Match: *), bumping its version and appending <c>user.updated</c>
    /// atomically; returns the new row, or null when there is no such user.
    /// </summary>
    public async Task<UserProfile?> UpdateUserProfileAsync(UpdateUser command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        return await ExecuteAsync(
            $"UPDATE {_users} SET name = coalesce($3, name), region = coalesce($4, region), version = version + 1, updated_at = now() WHERE id = $2 RETURNING *",
            UserUpdated, [command.Id, command.Name, command.Region], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Updates a user only if it is still at <paramref name="expectedVersion"/> (optimistic concurrency), bumping its
    /// version and appending <c>user.updated</c> atomically; returns the new row, or null when the user is missing
    /// or at another version (<see cref="GetVersionAsync"/> tells which).
    /// </summary>
    /// <returns>The row as written, or null when nothing was updated.</returns>
    public async Task<UserProfile?> TryUpdateUserAsync(UpdateUser command, long expectedVersion, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        return await ExecuteAsync(
            $"UPDATE {_users} SET name = coalesce($3, name), region = coalesce($4, region), version = version + 1, updated_at = now() WHERE id = $2 AND version = $5 RETURNING *",
            UserUpdated, [command.Id, command.Name, command.Region, expectedVersion], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A user as PostgreSQL holds it now (the primary: no projection lag), or null when there is no such user.</summary>
    public async Task<UserProfile?> GetUserAsync(long id, CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT id, email, name, region, version, created_at FROM {_users} WHERE id = $1", connection) { Parameters = { new() { Value = id } } };
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
                    return ReadProfile(reader);
                }
            }
        }
    }

    /// <summary>A user's current version in PostgreSQL, or null when there is no such user.</summary>
    public async Task<long?> GetVersionAsync(long id, CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT version FROM {_users} WHERE id = $1", connection) { Parameters = { new() { Value = id } } };
            await using (command.ConfigureAwait(false))
                return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long version ? version : null;
        }
    }

    /// <summary>
    /// Inserts or updates users by e-mail address in one transaction, reading <paramref name="users"/> once and holding
    /// at most <paramref name="chunkSize"/> of them in memory. Each chunk is one statement that writes the rows and
    /// their <c>user.created</c> / <c>user.updated</c> events together; a row whose name and region are unchanged is
    /// left alone (no new version, no event), and of one address repeated within a chunk the last row wins. All or
    /// nothing: an exception from the sequence (for example a bad input row) or from the server rolls everything back.
    /// </summary>
    /// <param name="users">The rows, read once.</param>
    /// <param name="chunkSize">Rows per statement (1 to 100,000).</param>
    /// <param name="cancellationToken">Cancels the upsert; nothing is committed.</param>
    public async Task<UserUpsertCounts> UpsertUsersAsync(IAsyncEnumerable<CreateUser> users, int chunkSize = 5_000, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(users);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunkSize, 100_000);
        var sql = $"""
            WITH input AS (
                SELECT DISTINCT ON (email) email, name, region
                FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(email, name, region, n)
                ORDER BY email, n DESC),
            u AS (
                INSERT INTO {_users} AS x (email, name, region)
                SELECT email, name, region FROM input ORDER BY email
                ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, region = EXCLUDED.region, version = x.version + 1, updated_at = now()
                WHERE (x.name, x.region) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.region)
                RETURNING x.id, x.email, x.name, x.region, x.version, x.created_at, (x.xmax = 0) AS inserted),
            e AS (
                INSERT INTO {_schema}.outbox (stream, aggregate_id, version, type, payload)
                SELECT '{Stream}', u.id::text, u.version, CASE WHEN u.inserted THEN '{UserCreated}' ELSE '{UserUpdated}' END,
                       jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'region', u.region, 'version', u.version, 'created_at', u.created_at)
                FROM u)
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM u
            """;
        long received = 0, inserted = 0, updated = 0;
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var emails = new List<string>(chunkSize);
                var names = new List<string>(chunkSize);
                var regions = new List<string>(chunkSize);
                async Task FlushAsync()
                {
                    if (emails.Count == 0) return;
                    var command = new NpgsqlCommand(sql, connection, transaction);
                    await using (command.ConfigureAwait(false))
                    {
                        command.Parameters.Add(new NpgsqlParameter { Value = emails.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                        command.Parameters.Add(new NpgsqlParameter { Value = names.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                        command.Parameters.Add(new NpgsqlParameter { Value = regions.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                        await using (reader.ConfigureAwait(false))
                        {
                            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                            inserted += reader.GetInt64(0);
                            updated += reader.GetInt64(1);
                        }
                    }
                    emails.Clear();
                    names.Clear();
                    regions.Clear();
                }

                await foreach (var user in users.WithCancellation(cancellationToken).ConfigureAwait(false))
                {
                    ArgumentNullException.ThrowIfNull(user);
                    emails.Add(user.Email);
                    names.Add(user.Name);
                    regions.Add(user.Region);
                    received++;
                    if (emails.Count == chunkSize) await FlushAsync().ConfigureAwait(false);
                }
                await FlushAsync().ConfigureAwait(false);
                if (inserted + updated > 0)
                {
                    // One wake-up for the whole load, throttled like every other append.
                    var notify = new NpgsqlCommand("SELECT pg_notify($1, '') WHERE pg_try_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction)
                    {
                        Parameters = { new() { Value = _outbox.Channel } },
                    };
                    await using (notify.ConfigureAwait(false)) await notify.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        return new UserUpsertCounts(received, inserted, updated);
    }

    /// <summary>Every user's (id, version) in PostgreSQL, the source of truth, for consistency checks.</summary>
    public async Task<IReadOnlyDictionary<string, long>> GetVersionsAsync(CancellationToken cancellationToken = default)
    {
        var result = new Dictionary<string, long>();
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT id, version FROM {_users}", connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        result[reader.GetInt64(0).ToString(CultureInfo.InvariantCulture)] = reader.GetInt64(1);
            }
        }
        return result;
    }

    /// <summary>
    /// Runs the row change, its outbox event and the wake-up NOTIFY as one statement: one round trip, and
    /// atomic because a statement outside an explicit transaction is its own transaction. The NOTIFY is
    /// throttled with a transaction-scoped try-lock, as <see cref="OutboxStore.AppendAsync(NpgsqlTransaction, IReadOnlyList{OutboxMessage}, CancellationToken)"/> does.
    /// </summary>
    private async Task<UserProfile?> ExecuteAsync(string change, string eventType, object?[] arguments, CancellationToken cancellationToken)
    {
        // The notification channel follows the change's arguments ($2..).
        var channel = $"${arguments.Length + 2}";
        var sql = $"""
            WITH u AS ({change}),
            e AS (
                INSERT INTO {_schema}.outbox (stream, aggregate_id, version, type, payload)
                SELECT '{Stream}', u.id::text, u.version, $1,
                       jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'region', u.region, 'version', u.version, 'created_at', u.created_at)
                FROM u)
            SELECT u.id, u.email, u.name, u.region, u.version, u.created_at, (SELECT pg_notify({channel}, '') WHERE pg_try_advisory_xact_lock(hashtextextended({channel}, 0))) FROM u
            """;
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(sql, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = eventType });
                foreach (var argument in arguments)
                    command.Parameters.Add(argument is null ? new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text } : new NpgsqlParameter { Value = argument });
                command.Parameters.Add(new NpgsqlParameter { Value = _outbox.Channel });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
                    return ReadProfile(reader);
                }
            }
        }
    }

    // id, email, name, region, version, created_at: the columns both queries select, in that order.
    private static UserProfile ReadProfile(NpgsqlDataReader reader) =>
        new(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), reader.GetFieldValue<DateTimeOffset>(5));
}

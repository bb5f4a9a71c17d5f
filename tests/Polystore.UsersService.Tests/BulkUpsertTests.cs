using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Polystore.UsersService.Tests;

/// <summary>POST /users:bulk: JSON arrays and NDJSON streams of any length, all or nothing, with inserted/updated counts.</summary>
public sealed class BulkUpsertTests(BulkUpsertTests.Fixture fixture) : IClassFixture<BulkUpsertTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        public ServiceApp App { get; private set; } = null!;
        public async ValueTask InitializeAsync() => App = await ServiceApp.StartAsync("svc_bulk");
        public async ValueTask DisposeAsync() => await App.DisposeAsync();
    }

    private static CancellationToken Ct => ServiceApp.Ct;
    private ServiceApp App => fixture.App;

    /// <summary>NDJSON rows <c>{prefix}{i}@bulk.test</c> for i in [from, to), written as they are sent.</summary>
    private static StreamedContent Ndjson(string prefix, int from, int to, Func<int, string>? name = null, Func<int, string?>? replace = null) =>
        new("application/x-ndjson", async (stream, ct) =>
        {
            var batch = new StringBuilder();
            for (var i = from; i < to; i++)
            {
                batch.Append(replace?.Invoke(i) ?? $"{{\"email\":\"{prefix}{i}@bulk.test\",\"name\":\"{name?.Invoke(i) ?? $"User {i}"}\",\"region\":\"r{i % 7}\"}}").Append('\n');
                if (batch.Length > 64 * 1024 || i == to - 1)
                {
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(batch.ToString()), ct);
                    batch.Clear();
                }
            }
        });

    private async Task<(long Received, long Inserted, long Updated, long Unchanged)> BulkAsync(HttpContent content)
    {
        using var response = await App.Client.PostAsync("/users:bulk", content, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await ServiceApp.ReadAsync(response);
        return (body.GetProperty("received").GetInt64(), body.GetProperty("inserted").GetInt64(), body.GetProperty("updated").GetInt64(), body.GetProperty("unchanged").GetInt64());
    }

    private Task<long> CountAsync(string prefix) => App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users WHERE email LIKE $1", prefix + "%");

    [Fact]
    public async Task A_100k_row_NDJSON_stream_is_upserted_with_its_counts_and_an_event_per_changed_row()
    {
        const int rows = 100_000;
        Assert.Equal((rows, rows, 0L, 0L), await BulkAsync(Ndjson("big", 0, rows)));
        Assert.Equal(rows, await CountAsync("big"));
        Assert.Equal(rows, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox WHERE type = 'user.created' AND payload->>'email' LIKE 'big%'"));

        // Again, overlapping: 5,000 renamed, 5,000 as they were, 1,000 new.
        var second = await BulkAsync(Ndjson("big", 90_000, 101_000, name: i => i < 95_000 ? $"Renamed {i}" : $"User {i}"));
        Assert.Equal((11_000L, 1_000L, 5_000L, 5_000L), second);
        Assert.Equal(5_000, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users WHERE name LIKE 'Renamed %' AND version = 2"));
        Assert.Equal(5_000, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox WHERE type = 'user.updated' AND payload->>'email' LIKE 'big%'"));
        Assert.Equal(rows + 1_000, await CountAsync("big"));
    }

    [Fact]
    public async Task A_JSON_array_is_upserted_and_a_repeated_address_counts_once_with_the_last_row_winning()
    {
        var body = "[" + string.Join(",", Enumerable.Range(0, 50).Select(i => $"{{\"email\":\"arr{i}@bulk.test\",\"name\":\"A{i}\",\"region\":\"eu\"}}"))
            + ",{\"email\":\"arr0@bulk.test\",\"name\":\"Last\",\"region\":\"eu\"}]";

        var counts = await BulkAsync(new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal((51L, 50L, 0L, 1L), counts);
        Assert.Equal("Last", await App.ScalarAsync<string>("SELECT name FROM {schema}.users WHERE email = 'arr0@bulk.test'"));
    }

    [Fact]
    public async Task A_bad_row_deep_in_the_stream_is_a_400_naming_its_line_and_field_and_nothing_is_written()
    {
        using var response = await App.Client.PostAsync("/users:bulk",
            Ndjson("bad", 0, 20_000, replace: i => i == 12_345 ? "{\"email\":\"bad12345@bulk.test\",\"name\":\"X\"}" : null), Ct);

        Assert.Contains("required", await ServiceApp.AssertFieldErrorAsync(response, "line 12346.region"), StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync("bad"));
    }

    [Theory]
    [InlineData("application/x-ndjson", "{\"email\":\"m1@bulk.test\",\"name\":\"M\",\"region\":\"eu\"}\n{\"email\":", "line 2")]
    [InlineData("application/x-ndjson", "{\"email\":\"m1@bulk.test\",\"name\":\"M\",\"region\":\"eu\"}\n[1]\n", "line 2")]
    [InlineData("application/json", "[{\"email\":\"m1@bulk.test\",\"name\":\"M\",\"region\":\"eu\"},{\"email\":\"m2@bulk.test\",\"name\":\"M\",\"region\":\"eu\",\"x\":1}]", "[1].x")]
    [InlineData("application/json", "[{\"email\":\"m1@bulk.test\",\"name\":\"M\",\"region\":\"eu\"},{\"email\":", "[1]")]
    [InlineData("application/json", "{\"email\":\"m1@bulk.test\"}", "body")]
    [InlineData("application/json", "", "body")]
    public async Task Malformed_input_is_a_400_naming_where_and_nothing_is_written(string mediaType, string body, string field)
    {
        using var response = await App.PostJsonAsync("/users:bulk", body, mediaType);

        var message = await ServiceApp.AssertFieldErrorAsync(response, field);
        Assert.DoesNotContain("$[0]", message, StringComparison.Ordinal); // a streamed element's parser path is not the document's
        Assert.Equal(0, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users WHERE email = 'm1@bulk.test'"));
    }

    [Fact]
    public async Task Another_media_type_is_a_415()
    {
        using var response = await App.PostJsonAsync("/users:bulk", "email,name,region", "text/csv");
        await ServiceApp.AssertProblemAsync(response, 415);
    }

    [Fact]
    public async Task The_body_is_streamed_a_bad_first_row_is_answered_before_the_body_ends()
    {
        // A raw chunked request whose body never ends: a server that buffered the body first could not answer.
        using var client = new TcpClient();
        await client.ConnectAsync(App.Address.Host, App.Address.Port, Ct);
        var stream = client.GetStream();
        var head = $"POST /users:bulk HTTP/1.1\r\nHost: {App.Address.Authority}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n";
        var line = "{\"email\":\"open@bulk.test\",\"name\":\"Open\"}\n";
        var chunk = $"{Encoding.UTF8.GetByteCount(line):X}\r\n{line}\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head + chunk), Ct);
        await stream.FlushAsync(Ct);

        using var guard = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        guard.CancelAfter(TimeSpan.FromMinutes(2)); // a hang guard: the failure this test looks for is no answer at all
        var buffer = new byte[4096];
        var read = await stream.ReadAsync(buffer, guard.Token);
        var answer = Encoding.UTF8.GetString(buffer, 0, read);

        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync("open"));
    }

    [Theory]
    [InlineData(70_000)]    // just past the row limit: refused by the row's own size
    [InlineData(3_000_000)] // far past it: refused before the parser holds it whole
    public async Task An_array_element_longer_than_a_row_may_be_is_a_400_naming_it_and_nothing_is_written(int nameLength)
    {
        var body = $"[{{\"email\":\"long0@bulk.test\",\"name\":\"A\",\"region\":\"eu\"}},{{\"email\":\"long1@bulk.test\",\"name\":\"{new string('n', nameLength)}\",\"region\":\"eu\"}}]";

        using var response = await App.PostJsonAsync("/users:bulk", body, "application/json");

        Assert.Contains("is longer than 65,536 bytes", await ServiceApp.AssertFieldErrorAsync(response, "[1]"), StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync("long"));
    }

    [Fact]
    public async Task An_array_element_that_never_ends_is_answered_before_the_body_ends()
    {
        // One element whose string goes on without end: a parser that buffered the element whole could not answer.
        using var client = new TcpClient();
        await client.ConnectAsync(App.Address.Host, App.Address.Port, Ct);
        var stream = client.GetStream();
        var head = $"POST /users:bulk HTTP/1.1\r\nHost: {App.Address.Authority}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), Ct);
        using var guard = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        guard.CancelAfter(TimeSpan.FromMinutes(2)); // a hang guard: the failure this test looks for is no answer at all
        var answering = stream.ReadAsync(new byte[4096], guard.Token).AsTask();
        var start = "[{\"email\":\"endless@bulk.test\",\"name\":\"";
        var filler = new string('n', 16 * 1024);
        var sent = 0;
        for (var first = true; !answering.IsCompleted && sent < 64 * 1024 * 1024; first = false)
        {
            var piece = first ? start + filler : filler;
            var write = stream.WriteAsync(Encoding.ASCII.GetBytes($"{piece.Length:X}\r\n{piece}\r\n"), guard.Token).AsTask();
            // The server may answer and stop reading: a write it never takes must not hold the test.
            if (await Task.WhenAny(write, answering) == answering) break;
            try
            {
                await write;
            }
            catch (IOException)
            {
                break; // the server answered and closed: the answer is still there to read
            }
            sent += piece.Length;
        }

        var read = await answering;

        Assert.True(sent < 64 * 1024 * 1024, "the server read 64 MB of one element without answering");
        Assert.True(read > 0);
        Assert.Equal(0, await CountAsync("endless"));
    }
}

using MongoDB.Bson;
using Polystore.Mongo.Diagnostics;

namespace Polystore.Mongo.Tests;

public sealed class KillOpRemedyTests
{
    [Fact]
    public void A_mongos_opid_is_written_as_a_string_and_a_mongod_one_as_a_number()
    {
        Assert.StartsWith("db.killOp(\"shard01:12345\")", MongoDiagnostics.KillOpRemedy(new BsonString("shard01:12345")), StringComparison.Ordinal);
        Assert.StartsWith("db.killOp(12345)", MongoDiagnostics.KillOpRemedy(new BsonInt32(12345)), StringComparison.Ordinal);
    }
}

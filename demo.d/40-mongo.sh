# MongoDB toolkit (sourced by ./run demo): indexes, unordered bulk upserts, the analytics pipeline, $merge view, $indexStats.
if [ -f "$CONFIG/mongodb.yaml" ]; then
  say "polystore mongo   (ensure indexes, bulk upsert 200 users + orders with one deliberate duplicate email, analytics, \$merge view, index usage)"
  polystore mongo --users 200 --batch-size 50 || warn "polystore mongo failed (exit $?)"
else
  say "polystore mongo   (no MongoDB server here: the exact pipeline and commands it would send, as JSON)"
  polystore mongo --users 200 --batch-size 50 || warn "polystore mongo failed (exit $?)"
  say "to run it against a server: ./run down; POLYSTORE_TEST_MONGO=mongodb://host:port ./run demo   (or put a mongodb.yaml in the config folder)"
fi

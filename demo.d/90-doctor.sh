# polystore doctor: a short health summary of the private servers (sourced by ./run demo).
# doctor exits 4 when it finds something critical; the demo shows that code instead of failing on it.
say "polystore doctor --summary   (every PostgreSQL, Redis and MongoDB check; criticals and warnings by name)"
doctor_rc=0
polystore doctor --summary || doctor_rc=$?
echo "polystore doctor exit code: $doctor_rc   (0 = nothing critical, 4 = a critical finding; full report: ./run doctor, ./run doctor --html report.html, ./run doctor --json)"
say "polystore doctor explain   (EXPLAIN (ANALYZE, BUFFERS) inside a transaction that is rolled back)"
polystore doctor explain "SELECT count(*) FROM pg_class WHERE relkind = 'r'" || echo "explain exit code: $?"
unset doctor_rc

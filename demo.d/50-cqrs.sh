# CQRS with a transactional outbox (issue 7): sourced by ./run demo.
say "polystore cqrs demo   (commands + outbox -> projection -> cached query; a partial commit, reported)"
polystore cqrs demo

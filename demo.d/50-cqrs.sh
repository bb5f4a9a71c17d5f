# CQRS with a transactional outbox: sourced by ./run demo.
say "polystore cqrs demo   (commands + outbox -> projection -> cached query; a partial commit, reported)"
polystore cqrs demo

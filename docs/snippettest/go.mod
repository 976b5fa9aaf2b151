module github.com/intakehq/intake/docs/snippettest

go 1.26.0

require (
	github.com/intakehq/intake v0.1.0
	github.com/intakehq/intake/backend/nats v0.1.0
	github.com/intakehq/intake/backend/postgres v0.1.0
	github.com/intakehq/intake/backend/sqlite v0.1.0
	github.com/intakehq/intake/tracing/oteltracing v0.1.0
	github.com/jackc/pgx/v5 v5.12.0
	github.com/nats-io/nats.go v1.56.0
	go.opentelemetry.io/otel v1.40.0
)

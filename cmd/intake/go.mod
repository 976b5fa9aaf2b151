module github.com/intakehq/intake/cmd/intake

go 1.24.0

require (
	github.com/intakehq/intake v0.1.0
	github.com/intakehq/intake/backend/postgres v0.1.0
	github.com/intakehq/intake/backend/sqlite v0.1.0
)

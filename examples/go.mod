module github.com/intakehq/intake/examples

go 1.24

require (
	github.com/intakehq/intake v0.1.0
	golang.org/x/time v0.12.0
)

require github.com/cenkalti/backoff/v4 v4.3.0 // indirect

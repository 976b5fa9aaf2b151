package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

type delivery struct{ key, sub string }

func (d delivery) Key() string          { return d.key }
func (d delivery) Subscription() string { return d.sub }

// A transaction that cannot begin (here the backend is closed: the file
// is out of reach) fails as infrastructure, so the stream retries the
// event without spending one of its attempts; the handler never runs.
func TestUnreachableIsInfrastructure(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "closed.db"))
	ran := false
	one := b.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error { ran = true; return nil })
	batch := b.HandleTxBatch(4, func(ctx context.Context, tx *sql.Tx, events []event.Event) error { ran = true; return nil })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	e := event.Event{Source: "shop", ID: "1"}
	ctx := dedupe.ContextWithDelivery(context.Background(), delivery{key: e.Key(), sub: "orders"})
	for name, fn := range map[string]func(context.Context, event.Event) error{"HandleTx": one, "HandleTxBatch": batch} {
		err := fn(ctx, e)
		if err == nil {
			t.Fatalf("%s on a closed backend: no error", name)
		}
		if c := event.ClassOf(err); c != event.Infrastructure {
			t.Errorf("%s on a closed backend: %v, class %s, want infrastructure", name, err, c)
		}
	}
	if ran {
		t.Error("the handler ran without a transaction")
	}
}

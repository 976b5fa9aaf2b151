package prelude

// What the guides' fragments take for granted: the packages they use,
// and the values and functions of "your" program they name.

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"golang.org/x/time/rate"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/alert"
	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/budget"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/order"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/reconcile"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/tracing/oteltracing"
	"github.com/intakehq/intake/webhook"
)

var (
	_ = time.Second
	_ = fmt.Sprint
	_ = log.Printf
	_ = alert.New
	_ = relay.New
	_ pgx.Tx
	_ = nats.Connect
	_ = otel.GetTracerProvider
	_ = intakenats.NewQueue
	_ = budget.New
	_ = console.New
	_ = event.Key
	_ = fetch.New
	_ = fleet.New
	_ = order.Stripe
	_ = reconcile.StripeEvents
	_ = oteltracing.New
	_ = webhook.New
	_ = intake.New
	_ = poller.New
)

var (
	ctx                       context.Context
	pool                      *pgxpool.Pool
	pg                        *postgres.Backend
	sq                        *sqlite.Backend
	stream                    *intake.Stream
	mux                       *http.ServeMux
	secret, appSecret, key    string
	cp                        poller.Checkpoint
	shopifyLimiter, limiter   *rate.Limiter
	apiClient                 *http.Client
	token, tokenNew, tokenOld string
	consumer                  *intake.Stream

	isOps              func(*http.Request) bool
	listFolderContinue poller.Fetcher
	relatedObject      func(payload []byte) (id, url string)
	askToReconnect     func(context.Context, fleet.Connection)
	listOrders         func(ctx context.Context, token, cursor string) (poller.Page, error)
	tokenFor           func(credential string) string
	secretsOf          func(ctx context.Context, tenant string) ([]webhook.Secret, error)
	notifyOwner        func(id, message string)
	vault              interface {
		Token(ctx context.Context, ref string) (string, error)
	}
)

// Invoice and StripeEvent are the types a router decodes into.
type Invoice struct{ ID string }

type StripeEvent[T any] struct {
	Type string
	Data struct{ Object T }
}

var (
	book         func(ctx context.Context, inv Invoice) error
	syncCustomer func(ctx context.Context, e event.Event) error

	apply, audit, latest intake.HandlerFunc
)

// Command routers mounts one intake webhook handler in each of four
// routers: net/http's ServeMux, chi, gin and echo. The handler is a plain
// http.Handler, so each router takes it unchanged (gin through gin.WrapH,
// echo through echo.WrapHandler).
//
// Run it and send it a signed GitHub-style webhook:
//
//	go run ./examples/routers -router chi
//
// It listens on a free port of 127.0.0.1 unless -addr says otherwise, and
// prints a curl command that sends it a correctly signed delivery.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

const path = "/hooks/github"

// Routers builds a router with the webhook handler mounted at path, by
// router name.
var Routers = map[string]func(h http.Handler) http.Handler{
	"net/http": func(h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST "+path, h)
		return mux
	},
	"chi": func(h http.Handler) http.Handler {
		r := chi.NewRouter()
		r.Method(http.MethodPost, path, h)
		return r
	},
	"gin": func(h http.Handler) http.Handler {
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		r.POST(path, gin.WrapH(h))
		return r
	},
	"echo": func(h http.Handler) http.Handler {
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.POST(path, echo.WrapHandler(h))
		return e
	},
}

func main() {
	router := flag.String("router", "net/http", "net/http, chi, gin or echo")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0: a free one)")
	flag.Parse()
	build, ok := Routers[*router]
	if !ok {
		log.Fatalf("unknown router %q", *router)
	}
	secret := os.Getenv("GITHUB_WEBHOOK_SECRET")
	if secret == "" {
		secret = "It's a Secret to Everybody"
	}

	stream := intake.New()
	hook := webhook.New("github", webhook.GitHub(secret))
	stream.Add(hook)
	stream.Handle(func(ctx context.Context, e event.Event) error {
		slog.Info("event", "id", e.ID, "type", e.Type, "bytes", len(e.Payload))
		return nil
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           build(hook),
		ReadHeaderTimeout: 5 * time.Second, // a slow client cannot hold a connection
		ReadTimeout:       10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go func() {
		fmt.Printf("%s router: POST http://%s%s\nsend it a signed delivery:\n\n%s\n\n", *router, ln.Addr(), path,
			curlLine("http://"+ln.Addr().String()+path, secret))
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	if err := stream.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// curlLine is a curl command that posts a GitHub "ping" delivery to url,
// signed with secret.
func curlLine(url, secret string) string {
	body := []byte(`{"zen":"Design for failure.","hook_id":1}`)
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	h := webhook.SignGitHub(secret, id, "ping", body)
	var b strings.Builder
	fmt.Fprintf(&b, "curl -i -X POST %s -H 'Content-Type: application/json'", url)
	for _, k := range []string{"X-Github-Event", "X-Github-Delivery", "X-Hub-Signature-256"} {
		fmt.Fprintf(&b, " -H '%s: %s'", k, h.Get(k))
	}
	fmt.Fprintf(&b, " --data '%s'", body)
	return b.String()
}

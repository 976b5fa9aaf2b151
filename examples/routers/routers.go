// Command routers mounts one intake webhook handler in each of four
// routers: net/http's ServeMux, chi, gin and echo. The handler is a plain
// http.Handler, so each router takes it unchanged (gin through gin.WrapH,
// echo through echo.WrapHandler).
//
// Run it and send it a signed GitHub-style webhook:
//
//	go run ./examples/routers -router chi -addr 127.0.0.1:8080
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
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
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
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
	srv := &http.Server{
		Addr:              *addr,
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
		fmt.Printf("%s router: POST http://%s%s\n", *router, *addr, path)
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	if err := stream.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

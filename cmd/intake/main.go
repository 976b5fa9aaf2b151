// Command intake runs a webhook relay, listens to one from behind a
// firewall, and sends signed test webhooks.
//
//	intake relay  --source github:github:$SECRET --token $TOKEN --db relay.db
//	intake listen --relay https://relay.example.com/feed --token $TOKEN --forward-to http://localhost:3000/hooks
//	intake send   --scheme github --secret $SECRET --url http://localhost:8080/hooks/github --file event.json
//
// Run "intake <command> -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `intake: webhooks and polling, one stream

Usage:

  intake relay   receive and verify webhooks publicly, keep them, serve them as a long-polled feed
  intake listen  long-poll a relay from behind a firewall; print each event or forward it
  intake send    sign a test webhook for a provider's scheme and send it
  intake events  list, show, replay or discard the events a stream holds (a console, or the database)

Run "intake <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage is an error in the command line; run prints it with the usage
// and exits 2.
var errUsage = errors.New("usage")

// run runs the command line args and returns the exit code: 0, 1 for a
// failure, 2 for a command line to fix.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "relay":
		err = relayCmd(ctx, args[1:], stdout, stderr)
	case "listen":
		err = listenCmd(ctx, args[1:], stdout, stderr)
	case "send":
		err = sendCmd(ctx, args[1:], stdout, stderr)
	case "events":
		err = eventsCmd(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "intake: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "intake "+args[0]+":", err)
		return 1
	}
}

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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `intake: webhooks and polling, one stream

Usage:

  intake relay   receive and verify webhooks publicly, keep them, serve them as a long-polled feed
  intake listen  long-poll a relay from behind a firewall; print each event or forward it
  intake send    sign a test webhook for a provider's scheme and send it
  intake events  list, show, replay or discard the events a stream holds (a console, or the database)
  intake connections  list, add, update, pause, resume, resync or remove a poller fleet's connections

Run "intake <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage is an error in the command line: run exits 2. A bare errUsage
// has been reported already (flag's own message and the usage); a
// [usageError] is printed on one line.
var errUsage = errors.New("usage")

// errHelp is returned when the user asked for a command's help, which was
// printed on stdout: run exits 0.
var errHelp = errors.New("help")

// usageError is a command line to fix, said in one line.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

// usagef returns a [usageError].
func usagef(format string, args ...any) error {
	return &usageError{msg: strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")}
}

// parseFlags parses args into fs. Help (-h, --help) goes to stdout and
// yields errHelp; a flag error (already printed by fs, with the usage) is
// errUsage; so is a positional argument beyond the first max.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, max int) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
			fs.Usage()
			return errHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > max {
		return usagef("unexpected argument %q", fs.Arg(max))
	}
	return nil
}

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
		err = sendCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	case "events":
		err = eventsCmd(ctx, args[1:], stdout, stderr)
	case "connections":
		err = connectionsCmd(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "intake: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "intake "+args[0]+":", ue.msg)
		return 2
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "intake "+args[0]+":", err)
		return 1
	}
}

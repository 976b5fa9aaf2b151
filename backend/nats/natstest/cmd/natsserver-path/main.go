// Command natsserver-path builds natstest's nats-server once (if not yet
// in the cache) and prints its path; CI runs it before the tests.
package main

import (
	"fmt"
	"os"

	"github.com/intakehq/intake/backend/nats/natstest"
)

func main() {
	p, err := natstest.Binary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsserver-path:", err)
		os.Exit(1)
	}
	fmt.Println(p)
}

package relay_test

import (
	"testing"

	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/relay/relaytest"
)

func TestMemoryFeedConformance(t *testing.T) {
	relaytest.RunFeed(t, func(t *testing.T) relay.Feed { return &relay.MemoryFeed{} })
}

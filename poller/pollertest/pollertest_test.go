package pollertest_test

import (
	"testing"

	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/poller/pollertest"
)

func TestMemoryCheckpoint(t *testing.T) {
	pollertest.RunCheckpoint(t, &poller.MemoryCheckpoint{})
}

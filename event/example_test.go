package event_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/intakehq/intake/event"
)

func ExampleEvent_Key() {
	e := event.Event{Source: "stripe", ID: "evt_1", Via: event.Webhook}
	fmt.Println(e.Key(), e.Via)
	// Output: 6:stripe:evt_1 webhook
}

func ExampleRetryDelay() {
	err := fmt.Errorf("put: %w", event.RetryAfter(2*time.Second, event.ErrQueueFull))
	d, ok := event.RetryDelay(err)
	fmt.Println(errors.Is(err, event.ErrQueueFull), d, ok)
	// Output: true 2s true
}

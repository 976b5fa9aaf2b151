package budget_test

import (
	"context"
	"fmt"
	"time"

	"github.com/intakehq/intake/budget"
)

// A budget of 4 requests a second spaces a credential's requests 250 ms
// apart, first come first served; another credential has its own. What
// the API says is left slows the pace until its reset.
func Example() {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now } // a fixed clock, for the output
	b := budget.New(&budget.Memory{}, budget.Policy{Rate: 4, Per: time.Second},
		budget.WithClock(clock, func(context.Context, time.Duration) error { return nil }))
	ctx := context.Background()
	for range 3 {
		wait, _ := b.Reserve(ctx, "api.example.com/token-a")
		fmt.Println("token-a waits", wait)
	}
	wait, _ := b.Reserve(ctx, "api.example.com/token-b")
	fmt.Println("token-b waits", wait)

	// "2 left, reset in 10 s": 5 s apart from now on.
	_ = b.Learn(ctx, "api.example.com/token-b", budget.Limits{Remaining: 2, Reset: now.Add(10 * time.Second)})
	wait, _ = b.Reserve(ctx, "api.example.com/token-b")
	fmt.Println("token-b waits", wait)
	wait, _ = b.Reserve(ctx, "api.example.com/token-b")
	fmt.Println("token-b waits", wait)
	// Output:
	// token-a waits 0s
	// token-a waits 250ms
	// token-a waits 500ms
	// token-b waits 0s
	// token-b waits 250ms
	// token-b waits 5.25s
}

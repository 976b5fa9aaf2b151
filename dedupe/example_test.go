package dedupe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/intakehq/intake/dedupe"
)

func ExampleMemory() {
	store := dedupe.NewMemory(dedupe.WithCapacity(10_000))
	ctx := context.Background()

	st, _ := store.Claim(ctx, "6:stripe:evt_1", time.Minute)
	fmt.Println(st) // the first claim wins
	st, _ = store.Claim(ctx, "6:stripe:evt_1", time.Minute)
	fmt.Println(st) // a concurrent duplicate waits
	_ = store.Commit(ctx, "6:stripe:evt_1", 7*24*time.Hour)
	st, _ = store.Claim(ctx, "6:stripe:evt_1", time.Minute)
	fmt.Println(st) // a late duplicate is suppressed
	// Output:
	// claimed
	// pending
	// done
}

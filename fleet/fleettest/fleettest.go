// Package fleettest is the conformance suite every [fleet.Store] passes:
// the in-memory store, and each backend's store against a real server.
//
//	func TestFleetConformance(t *testing.T) {
//		fleettest.Run(t, func(t *testing.T) fleet.Store { return &fleet.Memory{} })
//	}
//
// newStore must return a store of the subtest's own (a fresh table prefix
// or database): Claim looks at every connection in it. Leases are short
// real times, so that a server's own clock expires them.
package fleettest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/fleet"
)

// Run runs the suite, one fresh store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) fleet.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s fleet.Store)
	}{
		{"AddGetListRemove", addGetList},
		{"InvalidIsRefused", invalid},
		{"ClaimsOnlyDueActiveConnections", claimsDue},
		{"MostOverdueFirstInBatches", overdueFirst},
		{"EachDueConnectionClaimedOnceAmongConcurrentHolders", claimedOnce},
		{"ReleaseWritesTheResultInOneStep", releaseWrites},
		{"LostClaimsWriteNothing", lostClaims},
		{"ExpiredLeaseIsTakenOverAndFencesTheFirstHolder", takeOver},
		{"ExtendKeepsOnlyHeldClaims", extend},
		{"CredentialResumesOnlyTheSystemsPause", credentialResumes},
		{"ResumeAndResync", resumeResync},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

const (
	hour  = time.Hour
	lease = time.Minute
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func conn(id string) fleet.Connection {
	return fleet.Connection{ID: id, Source: "api", Interval: 5 * time.Minute, Credential: "cred-" + id}
}

func add(t *testing.T, s fleet.Store, c fleet.Connection, due time.Duration) {
	t.Helper()
	if err := s.Add(ctx(t), c, due); err != nil {
		t.Fatalf("Add(%s): %v", c.ID, err)
	}
}

func get(t *testing.T, s fleet.Store, id string) fleet.Connection {
	t.Helper()
	c, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return c
}

func claim(t *testing.T, s fleet.Store, holder string, n int, l time.Duration) []fleet.Claim {
	t.Helper()
	cs, _, err := s.Claim(ctx(t), holder, n, l)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return cs
}

func ids(cs []fleet.Claim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	slices.Sort(out)
	return out
}

func addGetList(t *testing.T, s fleet.Store) {
	for _, id := range []string{"c", "a", "b"} {
		add(t, s, conn(id), hour)
	}
	if err := s.Add(ctx(t), conn("a"), 0); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("Add of a taken ID: %v, want ErrExists", err)
	}
	c := get(t, s, "b")
	if c.Source != "api" || c.Interval != 5*time.Minute || c.Credential != "cred-b" || c.Paused != "" || c.Cursor != "" {
		t.Fatalf("Get(b) = %+v", c)
	}
	if d := time.Until(c.NextDue); d < 50*time.Minute || d > 70*time.Minute {
		t.Fatalf("added due in an hour, NextDue is %v away", d)
	}
	if _, err := s.Get(ctx(t), "nope"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Get of no connection: %v, want ErrNotFound", err)
	}
	list, err := s.List(ctx(t), fleet.Filter{Limit: 2})
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
		t.Fatalf("List(limit 2) = %v, %v; want a, b", list, err)
	}
	list, err = s.List(ctx(t), fleet.Filter{After: "b"})
	if err != nil || len(list) != 1 || list[0].ID != "c" {
		t.Fatalf("List(after b) = %v, %v; want c", list, err)
	}
	if err := s.Pause(ctx(t), "a", "ops@example.com", "migrating"); err != nil {
		t.Fatal(err)
	}
	paused := true
	list, err = s.List(ctx(t), fleet.Filter{Paused: &paused})
	if err != nil || len(list) != 1 || list[0].ID != "a" || list[0].Paused != "ops@example.com" || list[0].Reason != "migrating" {
		t.Fatalf("List(paused) = %+v, %v; want a, paused by ops", list, err)
	}
	other := conn("d")
	other.Source = "other"
	add(t, s, other, hour)
	list, err = s.List(ctx(t), fleet.Filter{Source: "other"})
	if err != nil || len(list) != 1 || list[0].ID != "d" {
		t.Fatalf("List(source other) = %v, %v; want d", list, err)
	}
	if err := s.Remove(ctx(t), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx(t), "b"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Get after Remove: %v, want ErrNotFound", err)
	}
	for name, err := range map[string]error{
		"Remove": s.Remove(ctx(t), "b"), "Pause": s.Pause(ctx(t), "b", "me", ""),
		"Resume": s.Resume(ctx(t), "b"), "Resync": s.Resync(ctx(t), "b", ""),
	} {
		if !errors.Is(err, fleet.ErrNotFound) {
			t.Errorf("%s of a removed connection: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := s.Update(ctx(t), "b", fleet.Change{}); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("Update of a removed connection: %v, want ErrNotFound", err)
	}
}

func invalid(t *testing.T, s fleet.Store) {
	for _, c := range []fleet.Connection{
		{Source: "api"}, {ID: " ", Source: "api"}, {ID: "x"}, {ID: "x", Source: "api", Interval: -time.Second},
	} {
		if err := s.Add(ctx(t), c, 0); !errors.Is(err, fleet.ErrInvalid) {
			t.Errorf("Add(%+v): %v, want ErrInvalid", c, err)
		}
	}
	add(t, s, conn("a"), hour)
	neg := -time.Minute
	if _, err := s.Update(ctx(t), "a", fleet.Change{Interval: &neg}); !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("Update to a negative interval: %v, want ErrInvalid", err)
	}
	if err := s.Pause(ctx(t), "a", "", "why"); !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("Pause by no one: %v, want ErrInvalid", err)
	}
	if c := get(t, s, "a"); c.Paused != "" || c.Interval != 5*time.Minute {
		t.Errorf("refused changes changed %+v", c)
	}
}

func claimsDue(t *testing.T, s fleet.Store) {
	add(t, s, conn("due"), 0)
	add(t, s, conn("later"), hour)
	add(t, s, conn("paused"), 0)
	if err := s.Pause(ctx(t), "paused", "me", ""); err != nil {
		t.Fatal(err)
	}
	cs, next, err := s.Claim(ctx(t), "r1", 10, lease)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(cs); !slices.Equal(got, []string{"due"}) {
		t.Fatalf("claimed %v, want [due]", got)
	}
	if next >= 0 && (next < 50*time.Minute || next > 70*time.Minute) {
		t.Fatalf("next due in %v, want about an hour (or -1, unknown)", next)
	}
	c := cs[0]
	if c.Holder != "r1" || c.Token == 0 || c.Credential != "cred-due" || c.Source != "api" {
		t.Fatalf("claim = %+v", c)
	}
	if again := claim(t, s, "r2", 10, lease); len(again) != 0 {
		t.Fatalf("a held connection claimed again: %v", ids(again))
	}
	if _, next, _ := s.Claim(ctx(t), "r2", 10, lease); next == 0 || next > 70*time.Minute {
		t.Fatalf("with the only due one held, next = %v, want the later one's", next)
	}
}

func overdueFirst(t *testing.T, s fleet.Store) {
	for i := range 6 {
		add(t, s, conn(fmt.Sprintf("c%d", i)), -time.Duration(i)*time.Minute)
	}
	first, next, err := s.Claim(ctx(t), "r1", 2, lease)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(first); !slices.Equal(got, []string{"c4", "c5"}) {
		t.Fatalf("first batch %v, want the most overdue [c4 c5]", got)
	}
	for _, c := range first {
		if time.Since(c.NextDue) < 3*time.Minute {
			t.Fatalf("claim of %s says it was due %v ago; it was due 4 or 5 minutes ago (the time it had, not its lease's end)", c.ID, time.Since(c.NextDue))
		}
	}
	if next != 0 {
		t.Fatalf("with more due, next = %v, want 0", next)
	}
	if got := ids(claim(t, s, "r1", 10, lease)); !slices.Equal(got, []string{"c0", "c1", "c2", "c3"}) {
		t.Fatalf("second batch %v", got)
	}
}

func claimedOnce(t *testing.T, s fleet.Store) {
	const n = 200
	for i := range n {
		add(t, s, conn(fmt.Sprintf("c%03d", i)), 0)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for h := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cs, _, err := s.Claim(ctx(t), fmt.Sprintf("r%d", h), 7, lease)
				if err != nil {
					errs <- err
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					seen[c.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d of %d connections claimed", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s claimed %d times", id, k)
		}
	}
}

func releaseWrites(t *testing.T, s fleet.Store) {
	add(t, s, conn("a"), 0)
	c := claim(t, s, "r1", 1, lease)[0]
	ok, err := s.Release(ctx(t), c, fleet.Result{Cursor: "p2", Next: hour, Events: 7})
	if err != nil || !ok {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	got := get(t, s, "a")
	if got.Cursor != "p2" || got.Events != 7 || got.Polls != 1 || got.Errors != 0 || got.LastPoll.IsZero() {
		t.Fatalf("after a poll: %+v", got)
	}
	if d := time.Until(got.NextDue); d < 50*time.Minute || d > 70*time.Minute {
		t.Fatalf("next due in %v, want an hour", d)
	}
	if again := claim(t, s, "r2", 1, lease); len(again) != 0 {
		t.Fatal("claimed before it was due")
	}
	if ok, _ := s.Release(ctx(t), c, fleet.Result{Cursor: "p9"}); ok {
		t.Fatal("a released claim released again")
	}
	if err := s.Resync(ctx(t), "a", "p2"); err != nil { // due now, same cursor
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		c = claim(t, s, "r1", 1, lease)[0]
		if ok, err := s.Release(ctx(t), c, fleet.Result{Cursor: "p2", Failed: true, Error: fmt.Sprintf("boom %d", i)}); !ok || err != nil {
			t.Fatalf("Release of a failure = %v, %v", ok, err)
		}
	}
	got = get(t, s, "a")
	if got.Errors != 2 || got.LastError != "boom 2" || got.Polls != 3 || got.Cursor != "p2" {
		t.Fatalf("after two failures: %+v", got)
	}
	c = claim(t, s, "r1", 1, lease)[0]
	if ok, err := s.Release(ctx(t), c, fleet.Result{Cursor: "p2", Failed: true, Error: "401", Pause: "token revoked"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	got = get(t, s, "a")
	if got.Paused != fleet.PausedBySystem || got.Reason != "token revoked" || got.Errors != 3 {
		t.Fatalf("after a refused credential: %+v", got)
	}
	if cs := claim(t, s, "r1", 1, lease); len(cs) != 0 {
		t.Fatal("a paused connection was claimed")
	}
	if err := s.Resume(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	c = claim(t, s, "r1", 1, lease)[0]
	if ok, _ := s.Release(ctx(t), c, fleet.Result{Cursor: "p3", Abandoned: true}); !ok {
		t.Fatal("an abandoned poll's release refused")
	}
	got = get(t, s, "a")
	if got.Polls != 4 || got.Cursor != "p3" || time.Until(got.NextDue) > time.Minute {
		t.Fatalf("an abandoned poll counted, or its cursor lost, or not due at once: %+v", got)
	}
}

func lostClaims(t *testing.T, s fleet.Store) {
	for _, id := range []string{"paused", "resynced", "removed"} {
		c := conn(id)
		c.Cursor = "start"
		add(t, s, c, 0)
	}
	held := map[string]fleet.Claim{}
	for _, c := range claim(t, s, "r1", 10, lease) {
		held[c.ID] = c
	}
	if len(held) != 3 {
		t.Fatalf("claimed %d", len(held))
	}
	if err := s.Pause(ctx(t), "paused", "ops", "by hand"); err != nil {
		t.Fatal(err)
	}
	if err := s.Resync(ctx(t), "resynced", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx(t), "removed"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Extend(ctx(t), "r1", slices.Collect(func(yield func(fleet.Claim) bool) {
		for _, c := range held {
			yield(c)
		}
	}), lease); err != nil || len(got) != 0 {
		t.Fatalf("Extend of lost claims = %v, %v; want none", got, err)
	}
	for id, c := range held {
		ok, err := s.Release(ctx(t), c, fleet.Result{Cursor: "moved", Next: hour, Pause: "x"})
		if err != nil || ok {
			t.Fatalf("Release of %s's lost claim = %v, %v; want false", id, ok, err)
		}
	}
	if c := get(t, s, "paused"); c.Cursor != "start" || c.Paused != "ops" {
		t.Fatalf("paused: %+v", c)
	}
	if c := get(t, s, "resynced"); c.Cursor != "" || c.Paused != "" || time.Until(c.NextDue) > time.Minute {
		t.Fatalf("resynced: %+v", c)
	}
	if got := ids(claim(t, s, "r2", 10, lease)); !slices.Equal(got, []string{"resynced"}) {
		t.Fatalf("claimable after: %v, want [resynced]", got)
	}
}

func takeOver(t *testing.T, s fleet.Store) {
	add(t, s, conn("a"), 0)
	const short = 300 * time.Millisecond
	first := claim(t, s, "r1", 1, short)[0]
	var second []fleet.Claim
	deadline := time.Now().Add(30 * time.Second)
	for len(second) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("an expired claim was not taken over in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
		second = claim(t, s, "r2", 1, lease)
	}
	if second[0].Token == first.Token {
		t.Fatal("the take-over kept the token")
	}
	if ok, _ := s.Release(ctx(t), first, fleet.Result{Cursor: "old"}); ok {
		t.Fatal("the first holder wrote after a take-over")
	}
	if got, _ := s.Extend(ctx(t), "r1", []fleet.Claim{first}, lease); len(got) != 0 {
		t.Fatal("the first holder renewed after a take-over")
	}
	if ok, err := s.Release(ctx(t), second[0], fleet.Result{Cursor: "new"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if c := get(t, s, "a"); c.Cursor != "new" {
		t.Fatalf("cursor %q, want the second holder's", c.Cursor)
	}
}

func extend(t *testing.T, s fleet.Store) {
	add(t, s, conn("a"), 0)
	add(t, s, conn("b"), 0)
	cs := claim(t, s, "r1", 2, 2*time.Second)
	got, err := s.Extend(ctx(t), "r1", cs, lease)
	if err != nil || !slices.Equal(sorted(got), []string{"a", "b"}) {
		t.Fatalf("Extend = %v, %v", got, err)
	}
	time.Sleep(2500 * time.Millisecond) // past the first lease, well within the renewed one
	if again := claim(t, s, "r2", 2, lease); len(again) != 0 {
		t.Fatalf("renewed claims taken over: %v", ids(again))
	}
	if got, _ := s.Extend(ctx(t), "r2", cs, lease); len(got) != 0 {
		t.Fatalf("another holder renewed r1's claims: %v", got)
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

func credentialResumes(t *testing.T, s fleet.Store) {
	add(t, s, conn("sys"), 0)
	add(t, s, conn("person"), 0)
	for _, c := range claim(t, s, "r1", 2, lease) {
		if ok, err := s.Release(ctx(t), c, fleet.Result{Failed: true, Error: "401", Pause: "token revoked", Next: hour}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if err := s.Pause(ctx(t), "person", "ops", "customer asked"); err != nil {
		t.Fatal(err)
	}
	cred, iv := "cred-2", time.Minute
	for _, id := range []string{"sys", "person"} {
		if _, err := s.Update(ctx(t), id, fleet.Change{Credential: &cred, Interval: &iv}); err != nil {
			t.Fatal(err)
		}
	}
	sys, person := get(t, s, "sys"), get(t, s, "person")
	if sys.Paused != "" || sys.Credential != "cred-2" || sys.Interval != time.Minute || sys.Errors != 0 || time.Until(sys.NextDue) > time.Minute {
		t.Fatalf("the system's pause, after new credentials: %+v", sys)
	}
	if person.Paused != "ops" || person.Reason != "customer asked" || person.Credential != "cred-2" {
		t.Fatalf("a person's pause, after new credentials: %+v", person)
	}
	if got := ids(claim(t, s, "r1", 2, lease)); !slices.Equal(got, []string{"sys"}) {
		t.Fatalf("claimable: %v, want [sys]", got)
	}
}

func resumeResync(t *testing.T, s fleet.Store) {
	c := conn("a")
	c.Cursor = "p5"
	add(t, s, c, hour)
	if err := s.Pause(ctx(t), "a", "ops", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "a"); got.Paused != "" || time.Until(got.NextDue) > time.Minute {
		t.Fatalf("resumed: %+v", got)
	}
	if err := s.Resume(ctx(t), "a"); err != nil {
		t.Fatalf("Resume of an active connection: %v", err)
	}
	cl := claim(t, s, "r1", 1, lease)[0]
	if ok, _ := s.Release(ctx(t), cl, fleet.Result{Cursor: "p6", Next: hour}); !ok {
		t.Fatal("release refused")
	}
	if err := s.Resync(ctx(t), "a", "2026-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "a"); got.Cursor != "2026-01-01T00:00:00Z" || time.Until(got.NextDue) > time.Minute {
		t.Fatalf("resynced: %+v", got)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intakehq/intake/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "replica" { // a campaign's replica: this binary, run again
		if err := replica(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: replica:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// needs skips (or, under CI=true, fails) a test whose campaign needs a
// program this machine does not have.
func needs(t *testing.T, program, install string) {
	t.Helper()
	if program == "initdb" {
		if bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(bins) > 0 {
			return
		}
	}
	if _, err := exec.LookPath(program); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no %s on this machine: %s", program, install)
	}
	t.Skipf("no %s on this machine: %s", program, install)
}

func campaignCases(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a campaign runs real servers for some 20 s")
	}
	if raceEnabled {
		t.Skip("the campaign runs without the race detector (its replicas would be ten times slower); the unit tests above run under it")
	}
}

// TestShortCampaign runs a short campaign on each backend — a few
// seconds of events with faults of every kind, a database crash where
// there is a database server — and fails on any anomaly the checker
// finds. The long campaign is the README's command.
func TestShortCampaign(t *testing.T) {
	testenv.SkipUnlessLong(t)
	campaignCases(t)
	for _, tc := range []struct {
		backend, program, install string
		seed                      uint64
	}{
		{"postgres", "initdb", "apt-get install postgresql", 11},
		{"redis", "redis-server", "apt-get install redis-server", 12},
		{"nats", "", "", 14},
		{"sqlite", "", "", 13},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			if tc.program != "" {
				needs(t, tc.program, tc.install)
			}
			rep, err := Run(context.Background(), Config{Backend: tc.backend, Seed: tc.seed, Duration: 12 * time.Second,
				Rate: 150, Replicas: 3, Faults: 10, DBCrashes: 1, Drain: 90 * time.Second, Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			rep.Print(&b)
			t.Log("\n" + b.String())
			if rep.Anomalies() > 0 {
				t.Errorf("%d anomalies: %s", rep.Anomalies(), rep.FirstAnomaly)
			}
			faults := 0
			for _, n := range rep.Faults {
				faults += n
			}
			if faults < 5 || rep.Deliveries < rep.Events || rep.Acked < rep.Events*9/10 || rep.Dead == 0 || rep.Replayed < rep.Dead {
				t.Errorf("the campaign did not do what it must: %d faults, %d of %d events acknowledged, %d deliveries, %d dead, %d replayed",
					faults, rep.Acked, rep.Events, rep.Deliveries, rep.Dead, rep.Replayed)
			}
			if tc.backend != "sqlite" && rep.Faults[FaultDBCrash] != 1 {
				t.Errorf("%d database crashes, want 1", rep.Faults[FaultDBCrash])
			}
		})
	}
}

// TestPlantedDefectIsCaught builds the replicas with a planted defect
// (the webhook answers at once and stores the event 200 ms later: the
// build tag intake_plant_early_ack) and runs a short campaign with two
// kills and a database crash: the checker must report acknowledged events
// lost, so that the campaign can fail.
func TestPlantedDefectIsCaught(t *testing.T) {
	testenv.SkipUnlessLong(t)
	campaignCases(t)
	needs(t, "initdb", "apt-get install postgresql")
	bin := filepath.Join(t.TempDir(), "chaos-planted")
	build := exec.Command("go", "build", "-tags", "intake_plant_early_ack", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags intake_plant_early_ack: %v\n%s", err, out)
	}
	cfg := Config{Backend: "postgres", Seed: 24, Duration: 8 * time.Second, Rate: 150,
		Replicas: 2, Faults: 6, DBCrashes: 1, Drain: 60 * time.Second, Replica: bin, Log: testLog{t}}
	kills := 0
	for _, f := range Schedule(cfg.Seed, ScheduleConfig{Duration: cfg.Duration, Faults: cfg.Faults, DBCrashes: cfg.DBCrashes, Replicas: cfg.Replicas, Network: true}) {
		if f.Kind == FaultKill {
			kills++
		}
	}
	if kills < 2 {
		t.Fatalf("the seed's schedule has %d kills; the defect needs a few to show", kills)
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Log("\n" + b.String())
	if rep.Lost == 0 {
		t.Fatal("a webhook that answers before it stores lost nothing the checker saw")
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

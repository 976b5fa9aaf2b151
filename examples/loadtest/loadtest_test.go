package main

import (
	"testing"
	"time"
)

func TestLoadtestSmall(t *testing.T) {
	results, err := run(config{n: 300, duration: 3 * time.Second, clients: 8, dup: 0.3, work: 5 * time.Millisecond, size: 512, rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 5 {
		t.Fatalf("%d targets", len(results))
	}
	for _, r := range results {
		if r.Requests == 0 || r.PerSecond <= 0 || r.P50us <= 0 || r.P99us < r.P50us {
			t.Errorf("%s: implausible %+v", r.Target, r)
		}
		if r.Non2xx != 0 {
			t.Errorf("%s: %d requests without a 2xx (or 409 for a duplicate)", r.Target, r.Non2xx)
		}
	}
	if results[0].Ratio != 1 {
		t.Errorf("bare ratio %v", results[0].Ratio)
	}
}

func TestPollLoadSmall(t *testing.T) {
	polls, err := pollLoad(1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(polls) != 2 || polls[1].Events != 1000 || polls[1].Requests < 10 || polls[1].PerSecond <= 0 {
		t.Fatalf("%+v", polls)
	}
}

package main

import (
	"math/rand/v2"
	"sort"
	"time"
)

// A Fault is one entry of a campaign's schedule.
type Fault struct {
	At     time.Duration // from the start of the campaign
	Kind   string        // one of the fault kinds
	Target int           // the replica slot (process and link faults)
	For    time.Duration // how long it lasts: a killed replica's or database's time down, a pause, a toxic
	Level  int64         // the toxic's attribute: latency ms, rate KB/s, bytes, timeout ms
}

// The fault kinds. Process faults fall on a replica, link faults on the
// toxiproxy link between one replica and the database, a crash on the
// database itself.
const (
	FaultKill      = "kill"      // SIGKILL, restarted after For
	FaultPause     = "pause"     // SIGSTOP, SIGCONT after For
	FaultLatency   = "latency"   // latency Level ms with jitter, both ways
	FaultTimeout   = "timeout"   // data stops; connections closed after Level ms (0: held)
	FaultReset     = "reset"     // reset_peer: connections reset after Level ms
	FaultBandwidth = "bandwidth" // Level KB/s
	FaultLimit     = "limit"     // limit_data: connections closed after Level bytes
	FaultPartition = "partition" // the proxy disabled: refused, open connections cut
	FaultDBCrash   = "dbcrash"   // the database SIGKILLed, restarted after For
)

// ScheduleConfig says what a schedule holds.
type ScheduleConfig struct {
	Duration  time.Duration // the faulty part of the campaign
	Faults    int           // process and link faults
	DBCrashes int           // database crashes, beside Faults
	Replicas  int
	Network   bool // link faults and database crashes apply (not to an embedded database)
}

// Schedule draws the faults of a campaign from seed: the same seed and
// config give the same schedule.
func Schedule(seed uint64, c ScheduleConfig) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73)) // "chaos"
	kinds := []struct {
		kind   string
		weight int
	}{{FaultKill, 30}, {FaultPause, 15}}
	if c.Network {
		kinds = append(kinds, []struct {
			kind   string
			weight int
		}{{FaultLatency, 12}, {FaultTimeout, 9}, {FaultReset, 9}, {FaultBandwidth, 7}, {FaultLimit, 7}, {FaultPartition, 11}}...)
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	span := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	last := time.Duration(float64(c.Duration) * 0.95)
	var out []Fault
	for range c.Faults {
		w := rng.IntN(total)
		kind := kinds[0].kind
		for _, k := range kinds {
			if w < k.weight {
				kind = k.kind
				break
			}
			w -= k.weight
		}
		f := Fault{At: time.Duration(rng.Int64N(int64(last))), Kind: kind, Target: rng.IntN(max(c.Replicas, 1))}
		switch kind {
		case FaultKill:
			f.For = span(0, 1500*time.Millisecond)
		case FaultPause:
			f.For = span(200*time.Millisecond, 7*time.Second) // past the Redis heartbeat's 5 s at times
		case FaultLatency:
			f.For, f.Level = span(time.Second, 6*time.Second), 50+rng.Int64N(450)
		case FaultTimeout:
			f.For, f.Level = span(500*time.Millisecond, 4*time.Second), rng.Int64N(3)*1000
		case FaultReset:
			f.For, f.Level = span(500*time.Millisecond, 3*time.Second), rng.Int64N(100)
		case FaultBandwidth:
			f.For, f.Level = span(2*time.Second, 8*time.Second), 1+rng.Int64N(64)
		case FaultLimit:
			f.For, f.Level = span(time.Second, 5*time.Second), 1024+rng.Int64N(63*1024)
		case FaultPartition:
			f.For = span(time.Second, 6*time.Second)
		}
		out = append(out, f)
	}
	if c.Network {
		for range c.DBCrashes {
			out = append(out, Fault{At: time.Duration(rng.Int64N(int64(last))), Kind: FaultDBCrash, For: span(300*time.Millisecond, 3*time.Second)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

package main

import (
	"reflect"
	"testing"
	"time"
)

// at is a time in the synthetic histories: second s.
func at(s float64) int64 { return int64(s * float64(time.Second)) }

func TestCheck(t *testing.T) {
	plan := map[string]string{"a": "sa", "b": "sb", "c": "sc"}
	sent := func(id string, st int) Record {
		return Record{T: at(0), Proc: "campaign", Kind: KindSend, ID: id, Status: st}
	}
	done := func(s float64, proc, id, sub string) Record {
		return Record{T: at(s), Proc: proc, Kind: KindDone, ID: id, Sub: sub, Sum: plan[id]}
	}
	begin := func(s float64, proc, id, sub string) Record {
		return Record{T: at(s), Proc: proc, Kind: KindBegin, ID: id, Sub: sub}
	}
	fault := func(s float64, kind, target string, seq int) Record {
		return Record{T: at(s), Proc: "campaign", Kind: KindFault, Fault: kind, Target: target, Seq: seq}
	}
	heal := func(s float64, kind, target string, seq int) Record {
		return Record{T: at(s), Proc: "campaign", Kind: KindHeal, Fault: kind, Target: target, Seq: seq}
	}
	all := func(proc string, s float64, ids ...string) []Record {
		var rs []Record
		for _, id := range ids {
			rs = append(rs, begin(s, proc, id, "x"), done(s+0.01, proc, id, "x"))
		}
		return rs
	}
	cat := func(parts ...[]Record) []Record {
		var rs []Record
		for _, p := range parts {
			rs = append(rs, p...)
		}
		return rs
	}
	acked := []Record{sent("a", 202), sent("b", 200), sent("c", 202)}
	for _, tc := range []struct {
		name   string
		ev     Evidence
		want   Report
		fields []string
	}{
		{
			name: "each once",
			ev:   Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b", "c"))},
			want: Report{Acked: 3, Deliveries: 3},
		},
		{
			name: "an acknowledged webhook never delivered is lost",
			ev:   Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b"))},
			want: Report{Acked: 3, Deliveries: 2, Lost: 1},
		},
		{
			name: "a page polled past and never delivered is lost",
			ev: Evidence{Effects: "history", Polled: []string{"c"}, Records: cat(acked[:2], all("r0.1", 1, "a", "b"),
				[]Record{{T: at(2), Proc: "campaign", Kind: KindPage, From: 1, To: 1}})},
			want: Report{Acked: 3, Deliveries: 2, Lost: 1},
		},
		{
			name: "never acknowledged, never delivered: refused until the sender gave up",
			ev:   Evidence{Effects: "history", Records: cat(acked[:2], []Record{sent("c", 503)}, all("r0.1", 1, "a", "b"))},
			want: Report{Acked: 2, Unacked: 1, Deliveries: 2},
		},
		{
			name: "a payload not as sent, an event never made: unexpected",
			ev: Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b"),
				[]Record{{T: at(2), Proc: "r0.1", Kind: KindDone, ID: "c", Sub: "x", Sum: "other"}, done(3, "r0.1", "zz", "x")})},
			want: Report{Acked: 3, Deliveries: 3, Unexpected: 2},
		},
		{
			name: "delivered twice, no fault: an anomaly",
			ev:   Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b", "c"), all("r1.1", 5, "a"))},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Unexplained: 1},
		},
		{
			name: "delivered twice, its process killed within the window: explained",
			ev: Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b", "c"),
				[]Record{fault(1.5, FaultKill, "r0.1", 1), heal(2, FaultKill, "r0.1", 1)}, all("r1.1", 5, "a"))},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Explained: 1},
		},
		{
			name: "killed long after the window: an anomaly",
			ev: Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b", "c"),
				[]Record{fault(4, FaultKill, "r0.1", 1), heal(4.5, FaultKill, "r0.1", 1)}, all("r1.1", 5, "a"))},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Unexplained: 1},
		},
		{
			name: "killed long after, another subscription still running there: explained",
			ev: Evidence{Effects: "history", Subs: []string{"x", "y"}, Plan: map[string]string{"a": "sa"},
				Records: cat(acked[:1], all("r0.1", 1, "a"), []Record{begin(1, "r0.1", "a", "y"),
					fault(4, FaultKill, "r0.1", 1), heal(4.5, FaultKill, "r0.1", 1)},
					all("r1.1", 5, "a"), []Record{begin(5, "r1.1", "a", "y"), done(5.1, "r1.1", "a", "y")})},
			want: Report{Events: 1, Acked: 1, Deliveries: 3, Duplicates: 1, Explained: 1},
		},
		{
			name: "the second process paused mid-call: explained",
			ev: Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b", "c"),
				[]Record{begin(0.5, "r1.1", "a", "x"), fault(0.6, FaultPause, "r1.1", 1), heal(6, FaultPause, "r1.1", 1), done(6.1, "r1.1", "a", "x")})},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Explained: 1},
		},
		{
			name: "taken over just after its link healed, before its liveness was renewed: explained",
			ev: Evidence{Effects: "history", Records: cat(acked, []Record{fault(0.5, FaultPartition, "r0", 1), heal(3, FaultPartition, "r0", 1)},
				all("r0.1", 3.2, "a", "b", "c"), all("r1.1", 3.5, "a"))},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Explained: 1},
		},
		{
			name: "long after its link healed: an anomaly",
			ev: Evidence{Effects: "history", Records: cat(acked, []Record{fault(0.5, FaultPartition, "r0", 1), heal(3, FaultPartition, "r0", 1)},
				all("r0.1", 8, "a", "b", "c"), all("r1.1", 12, "a"))},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Unexplained: 1},
		},
		{
			name: "a fault on another replica explains nothing",
			ev: Evidence{Effects: "history", Records: cat(acked, all("r0.1", 1, "a", "b", "c"),
				[]Record{fault(0.5, FaultPartition, "r2", 1), heal(3, FaultPartition, "r2", 1)}, all("r1.1", 5, "a"))},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Unexplained: 1},
		},
		{
			name: "a duplicate effect row is never explained",
			ev: Evidence{Effects: "rows", Records: cat(acked, []Record{fault(0.5, FaultKill, "r0.1", 1)}),
				Rows: []Row{{"a", "x", "sa", "r0.1"}, {"a", "x", "sa", "r1.1"}, {"b", "x", "sb", "r0.1"}, {"c", "x", "sc", "r0.1"}}},
			want: Report{Acked: 3, Deliveries: 4, Duplicates: 1, Unexplained: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			if ev.Plan == nil {
				ev.Plan = plan
			}
			if ev.Subs == nil {
				ev.Subs = []string{"x"}
			}
			ev.Window, ev.Settle = time.Second, 2*time.Second
			got := Check(ev)
			want := tc.want
			if want.Events == 0 {
				want.Events = len(ev.Plan)
			}
			g := reflect.ValueOf(*got)
			w := reflect.ValueOf(want)
			for _, f := range []string{"Events", "Acked", "Unacked", "Deliveries", "Lost", "Unexpected", "Duplicates", "Explained", "Unexplained"} {
				if a, b := g.FieldByName(f).Int(), w.FieldByName(f).Int(); a != b {
					t.Errorf("%s = %d, want %d (%v)", f, a, b, got.Examples)
				}
			}
			if (got.Anomalies() > 0) != (want.Lost+want.Unexpected+want.Unexplained+want.Unacked > 0) {
				t.Errorf("anomalies %d", got.Anomalies())
			}
		})
	}
}

func TestScheduleSameSeedSameFaults(t *testing.T) {
	cfg := ScheduleConfig{Duration: time.Minute, Faults: 40, DBCrashes: 3, Replicas: 3, Network: true}
	a, b, c := Schedule(7, cfg), Schedule(7, cfg), Schedule(8, cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("one seed, two schedules")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("two seeds, one schedule")
	}
	kinds := map[string]int{}
	for i, f := range a {
		kinds[f.Kind]++
		if f.At < 0 || f.At >= cfg.Duration || f.Target < 0 || f.Target >= cfg.Replicas || f.For < 0 {
			t.Errorf("fault %d out of bounds: %+v", i, f)
		}
		if i > 0 && f.At < a[i-1].At {
			t.Errorf("fault %d out of order", i)
		}
	}
	if len(a) != 43 || kinds[FaultDBCrash] != 3 || len(kinds) < 6 {
		t.Errorf("%d faults of kinds %v", len(a), kinds)
	}
	for _, f := range Schedule(7, ScheduleConfig{Duration: time.Minute, Faults: 40, DBCrashes: 3, Replicas: 1}) {
		if f.Kind != FaultKill && f.Kind != FaultPause {
			t.Errorf("an embedded database got a %s fault", f.Kind)
		}
	}
}

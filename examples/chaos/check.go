package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Evidence is what the checker reads: the events the campaign made, the
// merged history, and, where the handlers' effects live in the database,
// the effect rows.
type Evidence struct {
	// Effects says where a delivery is recorded. "rows": the handler's
	// effect row, written in the ack's transaction (Rows); a duplicate
	// row is never allowed. "history": the handler's done record; an
	// extra one is allowed only when a fault explains it (see Explain).
	Effects string
	Subs    []string          // the subscriptions every event goes to
	Plan    map[string]string // every event made: id → the payload's hash
	Polled  []string          // the polled API's list, in order
	Records []Record          // every process's history, merged
	Rows    []Row             // Effects "rows": the effect rows
	// Window is how long after a handler returned an ack may still be
	// uncommitted (the ack→commit window, with room for a loaded
	// machine); a crash inside it may deliver the event again.
	Window time.Duration
	// Settle is how long after a fault on a holder's link or database
	// ends the holder may still be taken over: until it has renewed its
	// liveness (Redis: its next heartbeat, every second; Postgres: its
	// advisory lock taken again, checked every second).
	Settle time.Duration
}

// Row is one effect row: a handler's write for an event.
type Row struct{ ID, Sub, Sum, Proc string }

// A Delivery is one handler call that took effect.
type Delivery struct {
	ID, Sub, Proc string
	Begin, Done   int64
	// Until is when the event's ack could last be uncommitted in Proc:
	// the stream commits an event once every subscription has acked it,
	// so it is the last done of the event's subscriptions there, or never
	// (math.MaxInt64) while one of them had not finished there.
	Until int64
}

// Report is the checker's verdict, in Jepsen's queue terms: lost
// (acknowledged, never delivered), unexpected (delivered, never sent, or
// not as sent), duplicated (delivered again, each extra delivery either
// explained by a fault around one of the two calls or an anomaly).
type Report struct {
	Events       int // events made
	Acked        int // events acknowledged: a 2xx, or polled past
	Unacked      int // events never acknowledged nor delivered: refused until the senders gave up, at the end of the drain
	Deliveries   int // handler calls that took effect
	Lost         int // (event, subscription) acknowledged and never delivered
	Unexpected   int // deliveries of no event made, or of a payload not as made
	Duplicates   int // extra deliveries
	Explained    int // of which a fault explains
	Unexplained  int // of which nothing does: anomalies
	Dead         int // events dead-lettered (a permanent error)
	Replayed     int // events replayed from the dead letters
	Sends        int // webhook send attempts
	SendAnswers  map[int]int
	Pages        int
	Faults       map[string]int
	Recovery     map[string][]time.Duration // per fault kind: see Check
	Stuck        int                        // events the queue still held when the drain ended: their resends refused while the holder lives
	Examples     []string                   // a few anomalies, said
	FirstAnomaly string
}

// Anomalies counts what the campaign promises never happens. An event
// never acknowledged is one: the senders retry until the drain ends, so
// intake refused it for minutes after every fault had healed.
// An event the queue still holds once every sender stopped and every
// fault healed is another: handled or not, a resend of it is refused.
func (r *Report) Anomalies() int { return r.Lost + r.Unexpected + r.Unexplained + r.Unacked + r.Stuck }

// interval is a fault's span on one target.
type interval struct {
	kind, target string
	from, to     int64
}

// Check reads the evidence and returns the verdict.
func Check(ev Evidence) *Report {
	rep := &Report{Events: len(ev.Plan), SendAnswers: map[int]int{}, Faults: map[string]int{}, Recovery: map[string][]time.Duration{}}
	acked := make(map[string]bool)
	maxCursor := 0
	begins := make(map[string]int64) // id|sub|proc|attempt → begin
	ended := make(map[string]bool)   // id|sub|proc|attempt: done or failed
	var dones []Delivery
	dead := map[string]bool{}
	replayed := map[string]bool{}
	var faults []interval
	open := map[int]int{} // a fault's Seq → its index in faults
	var end int64
	for _, r := range ev.Records {
		end = max(end, r.T)
		switch r.Kind {
		case KindSend:
			rep.Sends++
			rep.SendAnswers[r.Status]++
			if r.Status == 200 || r.Status == 202 {
				acked[r.ID] = true
			}
		case KindPage:
			rep.Pages++
			maxCursor = max(maxCursor, r.From)
		case KindBegin:
			begins[fmt.Sprint(r.ID, "|", r.Sub, "|", r.Proc, "|", r.Attempt)] = r.T
		case KindDone:
			ended[fmt.Sprint(r.ID, "|", r.Sub, "|", r.Proc, "|", r.Attempt)] = true
			b := begins[fmt.Sprint(r.ID, "|", r.Sub, "|", r.Proc, "|", r.Attempt)]
			if b == 0 {
				b = r.T
			}
			dones = append(dones, Delivery{ID: r.ID, Sub: r.Sub, Proc: r.Proc, Begin: b, Done: r.T})
			if want, ok := ev.Plan[r.ID]; ev.Effects == "history" && (!ok || want != r.Sum) {
				rep.Unexpected++
				rep.say("unexpected: %s/%s delivered by %s with payload %q", r.ID, r.Sub, r.Proc, r.Sum)
			}
		case KindFail:
			ended[fmt.Sprint(r.ID, "|", r.Sub, "|", r.Proc, "|", r.Attempt)] = true
			if r.Target == "permanent" {
				dead[r.ID] = true
			}
		case KindReplay:
			replayed[r.ID] = true
		case KindFault:
			rep.Faults[r.Fault]++
			open[r.Seq] = len(faults)
			faults = append(faults, interval{kind: r.Fault, target: r.Target, from: r.T, to: -1})
		case KindHeal:
			if i, ok := open[r.Seq]; ok {
				faults[i].to = r.T
				delete(open, r.Seq)
			}
		}
	}
	for i := range faults {
		if faults[i].to < 0 {
			faults[i].to = end
		}
	}
	for i, id := range ev.Polled {
		if i < maxCursor {
			acked[id] = true
		}
	}
	rep.Dead, rep.Replayed = len(dead), len(replayed)

	// When each event's ack could last be uncommitted, per process.
	last := make(map[string]int64) // id|proc → the last done there
	finished := make(map[string]int)
	for _, d := range dones {
		k := d.ID + "|" + d.Proc
		last[k] = max(last[k], d.Done)
		finished[k]++
	}
	for i := range dones {
		k := dones[i].ID + "|" + dones[i].Proc
		dones[i].Until = last[k]
		if finished[k] < len(ev.Subs) {
			dones[i].Until = math.MaxInt64
		}
	}

	// The deliveries: the effect rows, or the done records.
	got := make(map[string][]Delivery) // id|sub → deliveries
	if ev.Effects == "rows" {
		for _, row := range ev.Rows {
			if want, ok := ev.Plan[row.ID]; !ok || want != row.Sum {
				rep.Unexpected++
				rep.say("unexpected: row %s/%s by %s with payload %q", row.ID, row.Sub, row.Proc, row.Sum)
				continue
			}
			got[row.ID+"|"+row.Sub] = append(got[row.ID+"|"+row.Sub], Delivery{ID: row.ID, Sub: row.Sub, Proc: row.Proc})
		}
	} else {
		for _, d := range dones {
			if _, ok := ev.Plan[d.ID]; ok {
				got[d.ID+"|"+d.Sub] = append(got[d.ID+"|"+d.Sub], d)
			}
		}
	}
	for _, ds := range got {
		rep.Deliveries += len(ds)
	}

	ids := make([]string, 0, len(ev.Plan))
	for id := range ev.Plan {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if acked[id] {
			rep.Acked++
		}
		none := true
		for _, sub := range ev.Subs {
			ds := got[id+"|"+sub]
			if len(ds) > 0 {
				none = false
			}
			switch {
			case len(ds) == 0 && acked[id]:
				rep.Lost++
				rep.say("lost: %s/%s acknowledged, never delivered", id, sub)
			case len(ds) > 1:
				rep.Duplicates += len(ds) - 1
				sort.Slice(ds, func(i, j int) bool { return ds[i].Done < ds[j].Done })
				for k := 1; k < len(ds); k++ {
					if ev.Effects == "history" && explain(faults, ds[k-1], ds[k], ev.Window, ev.Settle) {
						rep.Explained++
						continue
					}
					rep.Unexplained++
					rep.say("duplicate: %s/%s delivered by %s and again by %s, no fault explains it", id, sub, ds[k-1].Proc, ds[k].Proc)
				}
			}
		}
		if none && !acked[id] {
			rep.Unacked++
			rep.say("never acknowledged: %s refused until the senders gave up", id)
		}
	}

	// Recovery. A killed replica: from the kill until every handler call
	// it had under way was done by another (or by its next incarnation).
	// Any other fault: from its end to the next delivery.
	doneAt := make([]int64, 0, len(dones))
	doneOf := make(map[string][]int64) // id|sub → done times
	for _, d := range dones {
		doneAt = append(doneAt, d.Done)
		doneOf[d.ID+"|"+d.Sub] = append(doneOf[d.ID+"|"+d.Sub], d.Done)
	}
	slices.Sort(doneAt)
	begun := make(map[string][]string) // proc → id|sub of calls that never ended there
	for k := range begins {
		if !ended[k] {
			parts := strings.SplitN(k, "|", 4)
			begun[parts[2]] = append(begun[parts[2]], parts[0]+"|"+parts[1])
		}
	}
	for _, f := range faults {
		if f.kind == FaultKill {
			worst := time.Duration(-1)
			for _, k := range begun[f.target] {
				for _, t := range doneOf[k] {
					if t >= f.from {
						worst = max(worst, time.Duration(t-f.from))
						break
					}
				}
			}
			if worst >= 0 {
				rep.Recovery[f.kind] = append(rep.Recovery[f.kind], worst)
			}
			continue
		}
		i, _ := slices.BinarySearch(doneAt, f.to)
		if i < len(doneAt) {
			rep.Recovery[f.kind] = append(rep.Recovery[f.kind], time.Duration(doneAt[i]-f.to))
		}
	}
	return rep
}

// explain says whether a fault explains the second delivery b of an
// event first delivered by a: a fault fell on the process of a while
// its ack could be uncommitted — a crash before the event was committed
// (until every subscription there acked, and the window after), or a
// pause, a fault on its link or a database crash in that time, which
// lets another replica adopt the event — or one fell on the process of
// b while its own call ran (paused mid-call, it finished after the
// adopter did). A fault's hold lasts until settle after it ends.
func explain(faults []interval, a, b Delivery, window, settle time.Duration) bool {
	w := window.Nanoseconds()
	until := a.Until
	if until < math.MaxInt64-w {
		until += w
	}
	for _, f := range faults {
		end := f.to + settle.Nanoseconds()
		if affects(f, a.Proc) && f.from <= until && end >= a.Begin {
			return true
		}
		if affects(f, b.Proc) && f.from <= b.Done+w && end >= b.Begin {
			return true
		}
	}
	// A kill after a database fault that held a's ack back.
	for _, f := range faults {
		if f.kind == FaultKill || !affects(f, a.Proc) || f.from > until || f.to < a.Done {
			continue
		}
		for _, k := range faults {
			if k.kind == FaultKill && affects(k, a.Proc) && k.from >= a.Done && k.from <= f.to+w {
				return true
			}
		}
	}
	return false
}

// affects says whether fault f falls on the replica incarnation proc
// ("r1.3"): a fault on that incarnation, on its slot's link ("r1"), or
// on the database.
func affects(f interval, proc string) bool {
	slot, _, _ := strings.Cut(proc, ".")
	return f.target == proc || f.target == slot || f.target == "db"
}

func (r *Report) say(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if r.FirstAnomaly == "" {
		r.FirstAnomaly = s
	}
	if len(r.Examples) < 10 {
		r.Examples = append(r.Examples, s)
	}
}

// Print writes the report as a few lines.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "events %d, acknowledged %d, unacknowledged %d, deliveries %d\n", r.Events, r.Acked, r.Unacked, r.Deliveries)
	fmt.Fprintf(w, "sends %d %v, pages %d\n", r.Sends, r.SendAnswers, r.Pages)
	kinds := make([]string, 0, len(r.Faults))
	total := 0
	for k, n := range r.Faults {
		kinds = append(kinds, k)
		total += n
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "faults %d:", total)
	for _, k := range kinds {
		rec := r.Recovery[k]
		slices.Sort(rec)
		p50, worst := time.Duration(0), time.Duration(0)
		if len(rec) > 0 {
			p50, worst = rec[len(rec)/2], rec[len(rec)-1]
		}
		fmt.Fprintf(w, " %s %d (recovery p50 %v, max %v);", k, r.Faults[k], p50.Round(time.Millisecond), worst.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "dead-lettered %d, replayed %d\n", r.Dead, r.Replayed)
	fmt.Fprintf(w, "lost %d, never acknowledged %d, unexpected %d, duplicates %d (explained %d, unexplained %d), left in the queue %d\n", r.Lost, r.Unacked, r.Unexpected, r.Duplicates, r.Explained, r.Unexplained, r.Stuck)
	for _, e := range r.Examples {
		fmt.Fprintln(w, "  ", e)
	}
}

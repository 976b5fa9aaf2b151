package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// api is the fake list API of every connection, over loopback. Each
// poll of a connection may write it one new item (with probability
// itemRate); a poll lists the items after its cursor (an item count), up
// to ten. It records what a fleet must never do: two polls of one
// connection at once, a cursor older than one already asked for, an item
// served and never handled (the harness compares with the replicas'
// logs).
type api struct {
	itemRate float64
	frozen   atomic.Bool // no new items: the end of a run

	mu      sync.Mutex
	conns   map[string]*apiConn
	byRep   map[string]int64 // polls per replica
	served  map[string]bool
	overlap int64
	back    int64
	polls   atomic.Int64
}

type apiConn struct {
	items    int
	inflight int
	maxAsked int
	lastPoll time.Time
	maxGap   time.Duration // longest gap between polls since mark
}

func newAPI(itemRate float64) *api {
	return &api{itemRate: itemRate, conns: map[string]*apiConn{}, byRep: map[string]int64{}, served: map[string]bool{}}
}

type listing struct {
	Items []string `json:"items"`
	Next  string   `json:"next"`
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rep := r.URL.Query().Get("conn"), r.Header.Get("X-Replica")
	cursor, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	now := time.Now()
	a.polls.Add(1)
	a.mu.Lock()
	c := a.conns[id]
	if c == nil {
		c = &apiConn{}
		a.conns[id] = c
	}
	c.inflight++
	if c.inflight > 1 {
		a.overlap++
	}
	if cursor < c.maxAsked {
		a.back++
	}
	c.maxAsked = max(c.maxAsked, cursor)
	if !c.lastPoll.IsZero() {
		c.maxGap = max(c.maxGap, now.Sub(c.lastPoll))
	}
	c.lastPoll = now
	a.byRep[rep]++
	if !a.frozen.Load() && rand.Float64() < a.itemRate {
		c.items++
	}
	var out listing
	for i := cursor; i < min(c.items, cursor+10); i++ {
		item := id + "-" + strconv.Itoa(i)
		out.Items = append(out.Items, item)
		a.served[item] = true
	}
	out.Next = strconv.Itoa(cursor + len(out.Items))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
	a.mu.Lock()
	c.inflight--
	a.mu.Unlock()
}

// mark starts the gap measurement over: a connection's longest gap
// between polls counts from here.
func (a *api) mark() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.conns {
		c.maxGap = 0
	}
}

// gaps returns, of the connections polled since mark, the longest gap
// between two polls, and how many had one longer than limit (a
// connection never polled again after mark counts too).
func (a *api) gaps(limit time.Duration, since time.Time) (longest time.Duration, over int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for _, c := range a.conns {
		g := c.maxGap
		if c.lastPoll.Before(since) {
			g = now.Sub(c.lastPoll) // not polled since: the gap is still open
		}
		longest = max(longest, g)
		if g > limit {
			over++
		}
	}
	return longest, over
}

func (a *api) replicas() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int64{}
	for k, v := range a.byRep {
		out[k] = v
	}
	return out
}

func (a *api) servedItems() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool, len(a.served))
	for k := range a.served {
		out[k] = true
	}
	return out
}

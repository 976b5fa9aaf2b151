package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// A Record is one line of a history: something a process did or saw, at
// a time. The campaign writes sends, answers, pages served and faults;
// each replica writes the handler calls it began and how they ended.
type Record struct {
	T       int64  `json:"t"`               // unix nanoseconds
	Proc    string `json:"proc"`            // "campaign", or a replica incarnation: "r1.3"
	Kind    string `json:"kind"`            // see the Kind constants
	ID      string `json:"id,omitempty"`    // the event's id
	Sub     string `json:"sub,omitempty"`   // the subscription
	Attempt int    `json:"att,omitempty"`   // the delivery attempt
	Status  int    `json:"st,omitempty"`    // an HTTP answer
	Sum     string `json:"sum,omitempty"`   // the payload's hash, as the handler saw it
	Fault   string `json:"fault,omitempty"` // a fault's kind
	Target  string `json:"target,omitempty"`
	From    int    `json:"from,omitempty"` // a page: the cursor asked for
	To      int    `json:"to,omitempty"`   // a page: the next cursor
	Err     string `json:"err,omitempty"`
	Seq     int    `json:"seq,omitempty"` // a fault's number: its heal carries the same
}

// The kinds of record.
const (
	KindSend   = "send"   // a webhook sent, Status its answer (0: no answer)
	KindPage   = "page"   // a page served from From to To
	KindBegin  = "begin"  // a handler call began
	KindDone   = "done"   // a handler call returned nil
	KindFail   = "fail"   // a handler call returned an error (Err)
	KindReplay = "replay" // a dead event replayed
	KindFault  = "fault"  // a fault began
	KindHeal   = "heal"   // a fault ended
	KindStart  = "start"  // a replica incarnation started
)

// History appends records to a file, one JSON line each, with one write
// per record and no buffer, so that a SIGKILL loses none it has written.
// It is safe for concurrent use.
type History struct {
	mu   sync.Mutex
	f    *os.File
	proc string
	buf  []byte
}

// OpenHistory opens (creating) the history file at path for proc.
func OpenHistory(path, proc string) (*History, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &History{f: f, proc: proc}, nil
}

// Add writes r, stamped with the time and the process if unset.
func (h *History) Add(r Record) {
	if r.T == 0 {
		r.T = time.Now().UnixNano()
	}
	if r.Proc == "" {
		r.Proc = h.proc
	}
	line, err := json.Marshal(r)
	if err != nil {
		panic(err) // a Record always marshals
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(append(h.buf[:0], line...), '\n')
	if _, err := h.f.Write(h.buf); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: history:", err)
	}
}

// Close closes the file.
func (h *History) Close() error { return h.f.Close() }

// ReadHistories reads every *.jsonl file in dir and returns their records
// merged in time order. A last line cut short by a kill is skipped.
func ReadHistories(dir string) ([]Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	var all []Record
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r Record
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				all = append(all, r)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].T < all[j].T })
	return all, nil
}

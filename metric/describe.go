package metric

// Info describes one of intake's measurements, for exporters: what it
// counts, and the labels it carries.
type Info struct {
	Help   string
	Source bool // labelled by source (every measurement but the stream-wide queue depth)
	Reason bool // a counter labelled by reason
}

var infos = map[string]Info{
	Accepted:        {"Events the stream stored (a webhook answered 2xx, or a poll's page kept).", true, false},
	Duplicate:       {"Events not stored again: their key is done, another holder has it pending, or a webhook's replay guard saw the delivery.", true, true},
	Rejected:        {"Events the stream did not store: the queue full, the stream closed, the store failing, or the event invalid.", true, true},
	Delivered:       {"Deliveries to a subscription, each attempt counted.", true, false},
	Acked:           {"Deliveries a subscription acknowledged.", true, false},
	Nacked:          {"Deliveries that will be retried: nacked by the handler, out of their lease, or taken over by another holder.", true, true},
	DeadLetter:      {"Events that ran out of attempts (or failed permanently) in a subscription and were kept as dead.", true, false},
	Committed:       {"Events acknowledged by every subscription and committed in the store.", true, false},
	Dropped:         {"Events still undelivered when the stream stopped, released for their senders to send again (in-memory store only).", true, false},
	QueueDepth:      {"Events stored and not yet committed, across sources.", false, false},
	Processing:      {"Seconds from an event's storing to its last subscription's ack.", true, false},
	Failed:          {"Deliveries that failed: a handler returned an error (or a reader nacked), whether retried or dead-lettered.", true, false},
	Stale:           {"Events a subscription skipped because their version was older than the one it had applied for their object.", true, false},
	SourceError:     {"Times a source's Run failed and was restarted.", true, false},
	Received:        {"Webhook requests answered, by outcome (accepted, duplicate, or why not).", true, true},
	AckLatency:      {"Seconds from a webhook request's start to its response.", true, false},
	Polls:           {"Requests a poller made for a page.", true, false},
	EmptyPolls:      {"Polls that brought no event.", true, false},
	NotModified:     {"Conditional polls answered 304 Not Modified.", true, false},
	PollErrors:      {"Polls that failed and were backed off.", true, false},
	Backoff:         {"Seconds a poller waited after a failed poll.", true, false},
	Fetched:         {"Requests for an object fetched on demand (package fetch).", true, false},
	Coalesced:       {"Events served by a fetch made for another event about the same object.", true, false},
	FetchFailed:     {"Fetches on demand that failed (the event is retried).", true, false},
	FleetPaused:     {"Connections a poller fleet paused because the API refused their credential.", true, false},
	BudgetRequests:  {"Requests that reserved a slot of a credential's budget.", true, false},
	BudgetWait:      {"Seconds a request waited for its budget's slot.", true, false},
	BudgetLimited:   {"Requests the API answered 429 Too Many Requests.", true, false},
	BudgetRemaining: {"What the API last said is left of the budget's window.", true, false},
}

// Describe returns what intake reports under name, and false for a name
// that is not one of this package's constants.
func Describe(name string) (Info, bool) {
	i, ok := infos[name]
	return i, ok
}

// Labels returns the label names of a measurement, in order: "source"
// and "reason" where they apply. A name that is not intake's is taken to
// carry both for a counter (counter true), a source otherwise.
func Labels(name string, counter bool) []string {
	i, ok := Describe(name)
	if !ok {
		i = Info{Source: true, Reason: counter}
	}
	var l []string
	if i.Source {
		l = append(l, "source")
	}
	if i.Reason {
		l = append(l, "reason")
	}
	return l
}

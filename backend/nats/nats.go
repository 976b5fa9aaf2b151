// Package nats keeps intake's durable queue in NATS JetStream, for a
// service that has outgrown one database: its streams are replicated by
// JetStream's Raft groups (three replicas survive the loss of any one
// server), and any number of intake replicas share them. A [Queue] is a
// [dedupe.Queue]: give each replica its own.
//
//	nc, _ := nats.Connect("nats://127.0.0.1:4222")
//	q, err := intakenats.NewQueue(ctx, nc, intakenats.WithReplicas(3))
//	stream := intake.New(intake.WithQueue(q))
//
// # Streams
//
// A queue named N (default "INTAKE") keeps three streams, made on first
// use with the replicas asked for:
//
//   - N: one message per key ("intake.N.e.<hash of the key>") holding the
//     event, its state (queued or dead), its holder and its attempts, and
//     one per holder that ever held events ("intake.N.holder.<id>"). At
//     most one message per subject: each write replaces the last, and
//     every change of a record is a compare-and-set on its subject's last
//     sequence (Nats-Expected-Last-Subject-Sequence), so two replicas
//     never both claim a key.
//   - N_DONE: one message per key done ("intake.N.d.<hash>"), which
//     carries the key for the whole retention: JetStream's own duplicate
//     window (Nats-Msg-Id) lasts minutes, an idempotency key must last
//     days. The stream's max age is the longest retention
//     ([WithMaxRetention], 7 days by default); each message also says when
//     its own retention ends, to the millisecond.
//   - N_LIVE: each holder's heartbeat ("intake.N.live.<id>"), renewed
//     every fifth of [WithHeartbeat], with a max age of the heartbeat: a
//     killed holder's heartbeat is gone by the server's clock, and its
//     events are adopted by the others.
//
// # Durability
//
// An acknowledged publish is on a quorum of the stream's replicas (R3:
// two of three) but, by default, on their disks only at the next sync,
// every two minutes: servers that crash together (a power cut, a kernel
// panic, kill -9 of every node) can lose what they acknowledged. Run
// nats-server with
//
//	jetstream { sync_interval: always }
//
// and nothing Enqueue acknowledged is lost, whatever crashes; the tests
// run with it. With the default, one server's crash loses nothing on R3
// (the others have it), and a correlated crash can lose up to two minutes.
//
// # Pollers and relays
//
// [Queue.Pollers] keeps pollers' cursors and leases in a key-value
// bucket (intake_N_poll), so that one replica polls each source and any
// resumes where it stopped; [Queue.Feed] is a relay feed on a stream of
// its own (N_FEED). Both pass the core's suites (pollertest, relaytest).
//
// # Outages
//
// While the connection is down every call fails at once with an error
// wrapping [ErrDisconnected] (a webhook is answered 503 with Retry-After,
// the stream reports not ready), rather than wait out the request timeout
// while the client buffers the write to send it after the reconnect.
//
// # Costs
//
// A claim is one publish and two reads (is the key done, before and
// after?); a resend of a key done is one read, and one of a key still
// held a read, a publish refused and a read of the record. A commit is
// one publish and one delete a key; on a server that takes atomic batches (nats-server 2.12
// or later, whose streams the queue makes with atomic publishes and
// per-message TTLs allowed), a commit of many keys is two batches of up
// to 500: the done keys, then markers that replace the records (each on
// the record's last sequence; the server removes a marker after a
// second). With sync_interval always, JetStream syncs a batch once
// where it syncs every other write on its own; on R3 a batch is one
// Raft proposal. A marker reads as a dead record whose retention has
// ended, which earlier versions of this package take for gone too.
// Adopt looks at who is alive in three requests; it reads the records'
// headers at its first call, and then only when a holder died or gave
// events back, once for all it will take. List reads every record: it is an operator's
// tool, fine for thousands of records, slow for millions.
package nats

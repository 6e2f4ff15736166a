// Package bench is `qchat bench`: a load tool for sizing a server, in the
// way of redis-benchmark or `nats bench`. It logs in accounts (registering
// those that do not exist yet), holds idle connections to measure what one
// costs the server, and drives one-to-one traffic between sender/receiver
// pairs with the delivery guarantee on: every MSG is answered by 250 only
// once the receiver has acknowledged it (or the server has stored it), and
// the receiver acknowledges everything it gets. It prints the delivered
// messages per second, the latency from send to receipt and to the 250
// reply (p50, p90, p99, p99.9, max), and the server's RSS per idle
// connection when given the server's pid on the same host.
//
// It speaks the wire with raw connections and the protocol package, not
// with modes/client, so that it costs the shared CPU as little as possible.
// It knows nothing of the server's insides.
package bench

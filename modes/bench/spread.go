package bench

import "fmt"

// How the clients spread over several servers (--server A,B,C: the nodes
// of one service). The i-th pair's sender is on node i mod N and its
// recipient on node i+1 mod N, so that with two nodes or more every
// message crosses from one node to another, and each node holds as many
// senders as recipients; idle clients and group members go round the
// nodes in turn (client i on node i mod N), so that a group's fan-out
// reaches every node. With one server everything is on it.

// pairNode is the node of the i-th connection of the pairs: 2k is the
// sender of pair k, 2k+1 its recipient.
func (b *bench) pairNode(i int) int {
	return (i/2 + i%2) % len(b.servers)
}

// roundNode is the node of the i-th idle client or group member.
func (b *bench) roundNode(i int) int { return i % len(b.servers) }

// spreadText says how the clients were spread, "" with one server.
func (b *bench) spreadText() string {
	if len(b.servers) < 2 {
		return ""
	}
	return fmt.Sprintf("%d nodes; pair i: sender on node i mod %d, recipient on the next node (every message crosses nodes); idle clients and group members in turn",
		len(b.servers), len(b.servers))
}

package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// cuttableDialer sits between a Kafka client and the brokers (sarama's
// Net.Proxy hook routes every broker connection through it, including the
// advertised addresses metadata returns). Cut closes every connection and
// refuses new ones, as a broker outage or network partition does; Restore
// lets connections through again. ArmEndTxn makes it cut at the worst
// moment of a transaction: after the coordinator answered an EndTxn,
// before the client reads the answer, so the commit happened and the
// client cannot know.
type cuttableDialer struct {
	mu       sync.Mutex
	cut      bool
	conns    map[net.Conn]struct{}
	endTxn   atomic.Bool // armed
	endTxnAt atomic.Int64
}

func (d *cuttableDialer) Dial(network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, fmt.Errorf("dial %s: connection refused (test: kafka cut off)", addr)
	}
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if d.conns == nil {
		d.conns = map[net.Conn]struct{}{}
	}
	d.conns[c] = struct{}{}
	return &cutConn{Conn: c, d: d}, nil
}

func (d *cuttableDialer) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for c := range d.conns {
		c.Close()
	}
	clear(d.conns)
}

func (d *cuttableDialer) Restore() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = false
}

// ArmEndTxn makes the next EndTxn answer be lost in a cut.
func (d *cuttableDialer) ArmEndTxn() { d.endTxn.Store(true) }

// Fired reports whether an armed EndTxn cut happened.
func (d *cuttableDialer) Fired() bool { return d.endTxnAt.Load() != 0 }

const apiKeyEndTxn = 26

type cutConn struct {
	net.Conn
	d      *cuttableDialer
	sentET atomic.Bool
}

func (c *cutConn) Write(b []byte) (int, error) {
	// sarama writes each request in one Write: size, api key, version, ...
	if c.d.endTxn.Load() && len(b) >= 6 && binary.BigEndian.Uint16(b[4:6]) == apiKeyEndTxn {
		c.sentET.Store(true)
	}
	return c.Conn.Write(b)
}

func (c *cutConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.sentET.Load() && c.d.endTxn.CompareAndSwap(true, false) {
		// The coordinator has answered the EndTxn: drop the answer.
		c.d.endTxnAt.Store(time.Now().UnixNano())
		c.d.Cut()
		return 0, errors.New("test: kafka cut off while the EndTxn answer was on its way")
	}
	return n, err
}

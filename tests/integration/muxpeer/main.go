// muxpeer: the reference smux (xtaci/smux) and yamux (hashicorp/yamux) implementations as a
// test peer for gostg, built from Debian's golang-github-xtaci-smux-dev and
// golang-github-hashicorp-yamux-dev (GOPATH mode, no network).
//
//	server: accept TCP on -listen, run a mux server session on each connection, and pipe
//	        every stream the peer opens to a new TCP connection to -target
//	        (what GOST's "-L forward+mtcp://:P/target" does).
//	client: accept plain TCP on -listen and carry each connection over a new stream of one
//	        mux client session to -connect (made again when it dies).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/xtaci/smux"
)

var (
	mode    = flag.String("mode", "server", "server or client")
	listen  = flag.String("listen", "127.0.0.1:0", "address to accept on")
	target  = flag.String("target", "", "server: where each stream goes")
	connect = flag.String("connect", "", "client: the mux server")
	kind    = flag.String("type", "smux", "smux or yamux")
	version = flag.Int("version", 1, "smux protocol version")
	window  = flag.Int("window", 0, "smux MaxStreamBuffer / yamux MaxStreamWindowSize (0: default)")
)

type session interface {
	open() (net.Conn, error)
	accept() (net.Conn, error)
	closed() bool
	Close() error
}

type smuxSession struct{ *smux.Session }

func (s smuxSession) open() (net.Conn, error)   { return s.OpenStream() }
func (s smuxSession) accept() (net.Conn, error) { return s.AcceptStream() }
func (s smuxSession) closed() bool              { return s.IsClosed() }

type yamuxSession struct{ *yamux.Session }

func (s yamuxSession) open() (net.Conn, error)   { return s.Open() }
func (s yamuxSession) accept() (net.Conn, error) { return s.Accept() }
func (s yamuxSession) closed() bool              { return s.IsClosed() }

func newSession(conn net.Conn, client bool) (session, error) {
	if *kind == "yamux" {
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = os.Stderr
		if *window > 0 {
			cfg.MaxStreamWindowSize = uint32(*window)
		}
		if client {
			s, err := yamux.Client(conn, cfg)
			return yamuxSession{s}, err
		}
		s, err := yamux.Server(conn, cfg)
		return yamuxSession{s}, err
	}
	cfg := smux.DefaultConfig()
	cfg.Version = *version
	if *window > 0 {
		cfg.MaxStreamBuffer = *window
	}
	if client {
		s, err := smux.Client(conn, cfg)
		return smuxSession{s}, err
	}
	s, err := smux.Server(conn, cfg)
	return smuxSession{s}, err
}

// pipe copies both ways; when one direction ends both conns are closed (as GOST's relay)
func pipe(a, b net.Conn) {
	var once sync.Once
	done := func() { once.Do(func() { a.Close(); b.Close() }) }
	go func() { io.Copy(a, b); done() }()
	io.Copy(b, a)
	done()
}

func serve(conn net.Conn) {
	defer conn.Close()
	s, err := newSession(conn, false)
	if err != nil {
		log.Print(err)
		return
	}
	defer s.Close()
	for {
		st, err := s.accept()
		if err != nil {
			return
		}
		go func() {
			up, err := net.DialTimeout("tcp", *target, 5*time.Second)
			if err != nil {
				st.Close()
				return
			}
			pipe(st, up)
		}()
	}
}

func main() {
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	os.Stdout.Sync()
	var mu sync.Mutex
	var cur session
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		if *mode == "server" {
			go serve(c)
			continue
		}
		go func() {
			mu.Lock()
			if cur == nil || cur.closed() {
				conn, err := net.DialTimeout("tcp", *connect, 5*time.Second)
				if err == nil {
					cur, err = newSession(conn, true)
				}
				if err != nil {
					mu.Unlock()
					c.Close()
					return
				}
			}
			s := cur
			mu.Unlock()
			st, err := s.open()
			if err != nil {
				c.Close()
				return
			}
			pipe(c, st)
		}()
	}
}

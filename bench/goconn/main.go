// goconn: a SOCKS5 connections/s driver and an echo server in Go, so that on a small box the
// clients cost far less CPU per connection than the proxy under test (bench/bench_workers.py
// --driver go). Loopback only; every wait has a deadline.
//
//	goconn echo PORT
//	goconn conn SOCKS_PORT ECHO_PORT CONC START_UNIX DURATION   -> one JSON line {ok, err, errors, cpu}
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func echo(port string) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			io.Copy(c, c)
		}(c)
	}
}

// one SOCKS5 CONNECT through the proxy, 64 bytes echoed, close (bench.py's _connrate exchange)
func one(socks string, echoPort uint16, msg, buf []byte) error {
	c, err := net.DialTimeout("tcp", socks, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := []byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 0}
	binary.BigEndian.PutUint16(req[11:], echoPort)
	if _, err = c.Write(req); err != nil {
		return err
	}
	if _, err = io.ReadFull(c, buf[:2+10]); err != nil {
		return err
	}
	if buf[1] != 0 || buf[3] != 0 {
		return fmt.Errorf("socks5 reply %d", buf[3])
	}
	if _, err = c.Write(msg); err != nil {
		return err
	}
	_, err = io.ReadFull(c, buf[:len(msg)])
	return err
}

func conn(args []string) {
	socks := "127.0.0.1:" + args[0]
	ep, _ := strconv.Atoi(args[1])
	conc, _ := strconv.Atoi(args[2])
	start, _ := strconv.ParseFloat(args[3], 64)
	dur, _ := strconv.ParseFloat(args[4], 64)
	t0 := time.Unix(0, int64(start*1e9))
	end := t0.Add(time.Duration(dur * 1e9))
	var ok, bad int64
	var mu sync.Mutex
	errs := map[string]int{}
	var wg sync.WaitGroup
	time.Sleep(time.Until(t0))
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, buf := make([]byte, 64), make([]byte, 64)
			for time.Now().Before(end) {
				if err := one(socks, uint16(ep), msg, buf); err != nil {
					atomic.AddInt64(&bad, 1)
					mu.Lock()
					errs[fmt.Sprintf("%T", err)]++
					mu.Unlock()
					time.Sleep(time.Millisecond)
				} else {
					atomic.AddInt64(&ok, 1)
				}
			}
		}()
	}
	wg.Wait()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	out, _ := json.Marshal(map[string]interface{}{"ok": ok, "err": bad, "errors": errs, "cpu": cpu})
	fmt.Println(string(out))
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "echo" {
		echo(os.Args[2])
	} else if len(os.Args) == 7 && os.Args[1] == "conn" {
		conn(os.Args[2:])
	} else {
		fmt.Fprintln(os.Stderr, "usage: goconn echo PORT | goconn conn SOCKS_PORT ECHO_PORT CONC START_UNIX DURATION")
		os.Exit(2)
	}
}

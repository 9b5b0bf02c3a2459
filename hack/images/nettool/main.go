// Command nettool is the network test tool of the local cluster's
// "nettool" image (and of the e2e tests on the host): a server that says who
// it is and who called, over HTTP, TCP and UDP, and the clients to drive it.
// Debian's static busybox cannot serve here: its wget and name lookups crash
// and its nc has no UDP.
//
//	nettool serve [--http 8080] [--tcp 7000] [--udp 9000]
//	    HTTP: "/" answers the host name, "/clientip" the caller's address.
//	    TCP: echoes each line. UDP: answers each datagram with the host name.
//	nettool get [--count N] [--retry D] URL
//	                                   N requests, one connection each; one body a line
//	nettool udp [--sport P] [--count N] [--interval D] HOST:PORT
//	                                   N datagrams from one source port; one answer a line
//	nettool lookup NAME               its IPv4 addresses, sorted, one a line
//	nettool hold [--interval D] HOST:PORT
//	                                   one TCP connection, a line sent and echoed every D;
//	                                   prints "ok N" each time, exits 1 when it breaks
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nettool serve|get|udp|hold ...")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "get":
		err = get(args)
	case "udp":
		err = udp(args)
	case "hold":
		err = hold(args)
	case "lookup":
		err = lookup(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nettool:", err)
		os.Exit(1)
	}
}

func hostname() string {
	if h := os.Getenv("NETTOOL_NAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpPort := fs.Int("http", 8080, "HTTP port (0: none)")
	tcpPort := fs.Int("tcp", 0, "TCP line echo port (0: none)")
	udpPort := fs.Int("udp", 0, "UDP port (0: none)")
	_ = fs.Parse(args)
	errs := make(chan error, 3)
	if *httpPort != 0 {
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, hostname()) })
		mux.HandleFunc("/clientip", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, r.RemoteAddr)
			fmt.Println("client", r.RemoteAddr)
		})
		go func() { errs <- http.ListenAndServe(fmt.Sprintf(":%d", *httpPort), mux) }()
	}
	if *tcpPort != 0 {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", *tcpPort))
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					errs <- err
					return
				}
				go func() {
					defer c.Close()
					_, _ = io.Copy(c, c)
				}()
			}
		}()
	}
	if *udpPort != 0 {
		pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", *udpPort))
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					errs <- err
					return
				}
				_, _ = pc.WriteTo([]byte(hostname()+"\n"), from)
			}
		}()
	}
	return <-errs
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	count := fs.Int("count", 1, "requests")
	timeout := fs.Duration("timeout", 3*time.Second, "per request")
	retry := fs.Duration("retry", 0, "keep retrying a failed request this long (a Service just created may not answer for a second)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("get: one URL")
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(*retry)
	for i := 0; i < *count; i++ {
		resp, err := client.Get(fs.Arg(0))
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			resp, err = client.Get(fs.Arg(0))
		}
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		fmt.Println(strings.TrimSpace(string(body)))
	}
	return nil
}

func udp(args []string) error {
	fs := flag.NewFlagSet("udp", flag.ExitOnError)
	sport := fs.Int("sport", 0, "source port (0: any)")
	count := fs.Int("count", 1, "datagrams")
	interval := fs.Duration("interval", 200*time.Millisecond, "between datagrams")
	timeout := fs.Duration("timeout", 2*time.Second, "wait for each answer")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("udp: one HOST:PORT")
	}
	raddr, err := net.ResolveUDPAddr("udp", fs.Arg(0))
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{Port: *sport}, raddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 1500)
	for i := 0; i < *count; i++ {
		if i > 0 {
			time.Sleep(*interval)
		}
		if _, err := conn.Write([]byte("who\n")); err != nil {
			fmt.Println("error:", err)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(*timeout))
		n, err := conn.Read(buf)
		if err != nil {
			// A lost answer is a result (the flow went nowhere), not the end.
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(strings.TrimSpace(string(buf[:n])))
	}
	return nil
}

func lookup(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("lookup: one NAME")
	}
	ips, err := net.LookupIP(args[0])
	if err != nil {
		return err
	}
	var out []string
	for _, ip := range ips {
		if ip.To4() != nil {
			out = append(out, ip.String())
		}
	}
	sort.Strings(out)
	fmt.Println(strings.Join(out, "\n"))
	return nil
}

func hold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	interval := fs.Duration("interval", 200*time.Millisecond, "between lines")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("hold: one HOST:PORT")
	}
	conn, err := net.DialTimeout("tcp", fs.Arg(0), 3*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i := 1; ; i++ {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "ping %d\n", i); err != nil {
			fmt.Println("broken:", err)
			return err
		}
		if _, err := r.ReadString('\n'); err != nil {
			fmt.Println("broken:", err)
			return err
		}
		fmt.Println("ok", i)
		time.Sleep(*interval)
	}
}

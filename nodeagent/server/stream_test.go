package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// The runtime's streaming server as containerd's behaves for an upgrade: it
// checks the one-time path and the client's query, switches protocols and
// then echoes what the client sends.
func fakeRuntimeStream(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/exec/token123" || r.URL.Query().Get("command") != "sh" || r.Header.Get("Upgrade") != "SPDY/3.1" {
			http.Error(w, fmt.Sprintf("unexpected %s %s upgrade %q", r.URL.Path, r.URL.RawQuery, r.Header.Get("Upgrade")), http.StatusBadRequest)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
		_ = rw.Flush()
		line, _ := rw.ReadString('\n')
		fmt.Fprint(rw, "echo:"+line)
		_ = rw.Flush()
	}))
}

func TestStreamProxy(t *testing.T) {
	backend := fakeRuntimeStream(t)
	defer backend.Close()
	s := &Server{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.proxy(w, r, backend.URL+"/exec/token123?ignored=1")
	}))
	defer front.Close()

	for _, tc := range []struct {
		name, headers string
		wantStatus    string
		wantEcho      bool
	}{
		{"SPDY upgrade switches and relays both ways", "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", "101", true},
		{"upgrade token among others", "Connection: keep-alive, Upgrade\r\nUpgrade: SPDY/3.1\r\n", "101", true},
		{"plain request is refused", "", "400", false},
		{"upgrade to something the runtime refuses", "Connection: Upgrade\r\nUpgrade: h2c\r\n", "400", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(front.URL, "http://"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST /exec/ns/pod/c?command=sh&stdin=1 HTTP/1.1\r\nHost: agent\r\n%s\r\n", tc.headers)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.Status, tc.wantStatus) {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %s (%s), want %s", resp.Status, body, tc.wantStatus)
			}
			if !tc.wantEcho {
				return
			}
			fmt.Fprint(conn, "hello\n")
			if line, err := br.ReadString('\n'); err != nil || line != "echo:hello\n" {
				t.Errorf("relayed %q %v, want echo:hello", line, err)
			}
		})
	}
}

// A WebSocket port-forward names its ports in "port" parameters, which the
// runtime's server takes from the CRI request (the kubelet's V4 options);
// SPDY carries them in its streams instead.
func TestWebSocketPorts(t *testing.T) {
	for _, tc := range []struct {
		name, query, upgrade string
		want                 []int32
		wantErr              string
	}{
		{"SPDY: none", "port=80", "SPDY/3.1", nil, ""},
		{"one port", "port=80", "websocket", []int32{80}, ""},
		{"repeated and comma-separated", "port=80&port=8080,9090", "websocket", []int32{80, 8080, 9090}, ""},
		{"none given", "", "websocket", nil, `query parameter "port" is required`},
		{"zero", "port=0", "websocket", nil, `unable to parse "0" as a port`},
		{"not a port", "port=70000", "websocket", nil, `unable to parse "70000" as a port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/portForward/ns/p?"+tc.query, nil)
			r.Header.Set("Upgrade", tc.upgrade)
			got, err := webSocketPorts(r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ports %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

//go:build unix

package probes

import (
	"net"
	"syscall"
)

// probeDialer sets a one-second SO_LINGER on its sockets, as the kubelet
// does, so that frequent probes do not pile up sockets in TIME_WAIT.
func probeDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
		})
	}}
}

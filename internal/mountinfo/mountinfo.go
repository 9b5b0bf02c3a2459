// Package mountinfo reads the kernel's table of mounts (/proc/self/mountinfo): which
// paths are mount points. `kubeparts up` unmounts what its nodes left under its data dir;
// `kubeparts swap` refuses to replace a manifest that is one.
package mountinfo

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Self is this process's table.
const Self = "/proc/self/mountinfo"

// Points lists the mount points of a mountinfo file, in its order.
func Points(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 {
			points = append(points, Unescape(fields[4]))
		}
	}
	return points, s.Err()
}

// Unescape undoes the kernel's octal escapes in mountinfo's paths (\040 for a space).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

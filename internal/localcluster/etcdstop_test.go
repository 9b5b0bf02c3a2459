package localcluster

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// member serves an etcd metrics listener reporting leader (or answering 500).
func member(t *testing.T, leader string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || leader == "broken" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "# HELP etcd_server_is_leader Whether or not this member is a leader.\n# TYPE etcd_server_is_leader gauge\netcd_server_is_leader %s\netcd_server_leader_changes_seen_total 1\n", leader)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/health"
}

func TestStopWavesLeaderLast(t *testing.T) {
	for _, tc := range []struct {
		name      string
		component string
		leaders   []string // per copy: its etcd_server_is_leader, or "broken"
		want      [][]int  // copies per wave, in order
	}{
		{"leader in the middle stops last", "etcd", []string{"0", "1", "0"}, [][]int{{0, 2}, {1}}},
		{"leader first stops last", "etcd", []string{"1", "0", "0"}, [][]int{{1, 2}, {0}}},
		{"no leader (quorum lost): together", "etcd", []string{"0", "0", "0"}, [][]int{{0, 1, 2}}},
		{"unreadable metrics count as followers", "etcd", []string{"broken", "1", "0"}, [][]int{{0, 2}, {1}}},
		{"a lone member", "etcd", []string{"1"}, [][]int{{0}}},
		{"other components stop together", "kube-apiserver", []string{"0", "1"}, [][]int{{0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var copies []*process
			index := map[*process]int{}
			for i, l := range tc.leaders {
				p := &process{name: fmt.Sprintf("%s-%d", tc.component, i), component: tc.component, health: member(t, l)}
				copies = append(copies, p)
				index[p] = i
			}
			var got [][]int
			for _, wave := range stopWaves(copies) {
				var ids []int
				for _, p := range wave {
					ids = append(ids, index[p])
				}
				got = append(got, ids)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("waves %v, want %v", got, tc.want)
			}
		})
	}
}

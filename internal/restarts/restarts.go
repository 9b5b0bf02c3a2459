// Package restarts is the record `kubeparts up` keeps of the processes it restarted
// (its supervisor's count), which `kubeparts status` prints and kubeparts-apiserver's
// components view shows per copy.
package restarts

import (
	"encoding/json"
	"os"
)

// Record is one process restarted at least once.
type Record struct {
	// Process is the supervisor's name for it (its log file's).
	Process string `json:"process"`
	// Binary is the program, e.g. kube-apiserver.
	Binary string `json:"binary"`
	// Instance is the host or node the copy runs on.
	Instance string `json:"instance,omitempty"`
	Restarts int32  `json:"restarts"`
}

// Write replaces the file with records, atomically (readers never see half of it).
func Write(path string, records []Record) error {
	data, err := json.Marshal(records)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Read returns the records; a missing file means nothing was restarted.
func Read(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var records []Record
	return records, json.Unmarshal(data, &records)
}

// Of sums the restarts of binary's copy on instance; with one copy only (lone is
// true), of every copy of binary, whatever the supervisor named its host.
func Of(records []Record, binary, instance string, lone bool) int32 {
	var n int32
	for _, r := range records {
		if r.Binary == binary && (r.Instance == instance || lone) {
			n += r.Restarts
		}
	}
	return n
}

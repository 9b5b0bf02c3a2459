// Command etcd is the stock etcd server, built from go.etcd.io/etcd/server/v3 so that
// no prebuilt binary has to be downloaded.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

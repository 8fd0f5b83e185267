// Command etcd is the upstream etcd server, built from go.etcd.io/etcd/server/v3 for
// ebbflow's integration tests (deploy/dev/kube.sh). It mirrors etcd's own main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

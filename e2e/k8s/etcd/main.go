// Command etcd is the upstream etcd server, built from its Go module at the
// version pinned in go.mod. It exists only so e2e/k8s/install.sh can build a
// real etcd without a container engine or a release download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

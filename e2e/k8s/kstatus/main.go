// Command kstatus prints how the kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status,
// the reading Flux, kpt and cli-utils use) computes the status of one Kubernetes object read
// as JSON from stdin: one line "<Status>\t<message>" (Current, InProgress, Failed, ...).
// Built by e2e/k8s/install.sh; the helm e2e suite runs it on the operator's real objects.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading stdin:", err)
		os.Exit(2)
	}
	// Unstructured's own decoding keeps integers as int64, as kstatus expects.
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(data); err != nil {
		fmt.Fprintln(os.Stderr, "stdin is not a Kubernetes object in JSON:", err)
		os.Exit(2)
	}
	res, err := status.Compute(&obj)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
	fmt.Printf("%s\t%s\n", res.Status, res.Message)
}

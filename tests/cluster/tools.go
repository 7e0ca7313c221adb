//go:build tools

// Package testcluster pins the Kubernetes commands (and the etcd server, at the version
// k8s.io/kubernetes itself requires) that the test suite builds.
package testcluster

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

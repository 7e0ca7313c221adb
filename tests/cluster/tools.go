//go:build tools

// Package testcluster pins the Kubernetes commands the test suite builds.
package testcluster

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

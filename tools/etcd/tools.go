//go:build tools

// Package tools pins the etcd server that backs the local test cluster's kube-apiserver.
package tools

import _ "go.etcd.io/etcd/server/v3"

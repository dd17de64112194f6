//go:build tools

// Package tools pins kwok, which simulates the local test cluster's nodes and pod lifecycles.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"

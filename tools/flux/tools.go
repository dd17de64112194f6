//go:build tools

// Package tools pins Flux's source-controller and kustomize-controller for the gitops tests.
package tools

import (
	_ "github.com/fluxcd/kustomize-controller"
	_ "github.com/fluxcd/source-controller"
)

#!/usr/bin/env bash
# The quickstart on a kind cluster, for machines with Docker (`make demo` picks it there).
#
# kind nodes have no GPUs, so examples/simulated/models.yaml serves the examples' models with
# the inference simulator. The operator runs in the cluster from an image built here and
# installed with the Helm chart. Needs docker, kind, kubectl and helm on PATH (tools/build.sh
# builds kubectl; `helm` from tools/helm when built). Deletes the cluster on exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${KIND_CLUSTER:-aiapp-demo}
image=aiapp:dev
namespace=demo

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-demo: $tool is not on PATH" >&2; exit 1; }
done

echo "==> Creating kind cluster $cluster"
kind create cluster --name "$cluster" --wait 180s
trap 'echo "==> Deleting kind cluster $cluster"; kind delete cluster --name "$cluster"' EXIT

echo "==> Building the image and loading it into the cluster"
docker build -t "$image" "$repo"
kind load docker-image "$image" --name "$cluster"

echo "==> Installing the operator with the Helm chart"
helm upgrade --install aiapp "$repo/charts/aiapp-operator" \
  --namespace aiapp-system --create-namespace \
  --set image.repository=aiapp --set image.tag=dev --set image.pullPolicy=Never \
  --set operator.evaluationModel=llama3.1:8b \
  --wait --timeout 10m

echo "==> Applying the examples (models served by the simulator)"
kubectl create namespace "$namespace"
kubectl create secret generic jira -n "$namespace" --from-literal=token=demo-token
kubectl create secret generic openai -n "$namespace" --from-literal=api-key=sk-demo
kubectl apply --server-side -n "$namespace" -f "$repo/examples/simulated/models.yaml"
for example in minimal jira docs-assistant external-provider; do
  kubectl apply --server-side -n "$namespace" -f "$repo/examples/$example/aiapp.yaml"
done

echo "==> Waiting for every app to be Ready"
kubectl wait aiapps --all -n "$namespace" --for=condition=Ready --timeout=15m
kubectl get aiapps -n "$namespace" -o wide

if [[ ${KIND_DEMO_EXIT:-} == 1 ]]; then
  exit 0
fi
echo "Try: kubectl --context kind-$cluster get aiapps -n $namespace -o wide"
read -r -p "Press Enter to delete the cluster... " _ || true

"""How kwok plays node and pod lifecycles on the simulated nodes.

kwok runs no containers; these Stage objects tell it which status to write and when. Besides
the usual lifecycle (nodes become Ready, pods start, Job pods complete, deleted pods go away),
three pod annotations let tests play failures that real clusters show:

- ``sim.aiapp.dev/waiting-reason``: the containers never start and wait with this reason
  (``ImagePullBackOff``, ``CrashLoopBackOff``, ...), with ``sim.aiapp.dev/waiting-message``.
- ``sim.aiapp.dev/exit-code``: a Job pod terminates with this exit code instead of 0.
- ``sim.aiapp.dev/termination-message``: what the container wrote to its termination log.
"""

from __future__ import annotations

WAITING_REASON = "sim.aiapp.dev/waiting-reason"
WAITING_MESSAGE = "sim.aiapp.dev/waiting-message"
EXIT_CODE = "sim.aiapp.dev/exit-code"
TERMINATION_MESSAGE = "sim.aiapp.dev/termination-message"

_NODE_READY = """
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: aiapp-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {type: Ready, status: "True", reason: KubeletReady, message: simulated by kwok,
         lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      - {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory, message: "",
         lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      - {type: DiskPressure, status: "False", reason: KubeletHasNoDiskPressure, message: "",
         lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      - {type: PIDPressure, status: "False", reason: KubeletHasSufficientPID, message: "",
         lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      capacity:
      {{ YAML .status.capacity 1 }}
      allocatable:
      {{ YAML .status.allocatable 1 }}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: simulated
        containerRuntimeVersion: kwok
      phase: Running
"""

_POD_RUNNING = """
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: aiapp-pod-running
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.metadata.annotations["@WAITING@"]', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Pending]}
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ $now | Quote }}}}
      {{ end }}
      {{ with NodeIPWith .spec.nodeName }}
      hostIP: {{ . | Quote }}
      {{ end }}
      {{ with PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace }}
      podIP: {{ . | Quote }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
"""

_POD_WAITING = """
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: aiapp-pod-waiting
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.metadata.annotations["@WAITING@"]', operator: Exists}
    - {key: '.status.phase', operator: In, values: [Pending]}
    - {key: '.status.containerStatuses', operator: DoesNotExist}
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $reason := index .metadata.annotations "@WAITING@" }}
      {{ $message := or (index .metadata.annotations "@MESSAGE@") $reason }}
      conditions:
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "False", reason: ContainersNotReady,
         lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "False", reason: ContainersNotReady,
         lastTransitionTime: {{ $now | Quote }}}
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        started: false
        restartCount: 3
        state: {waiting: {reason: {{ $reason | Quote }}, message: {{ $message | Quote }}}}
      {{ end }}
      phase: Pending
      startTime: {{ $now | Quote }}
"""

_JOB_POD_DONE = """
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: aiapp-job-pod-done
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Running]}
    - {key: '.metadata.ownerReferences.[].kind', operator: In, values: [Job]}
  delay:
    durationMilliseconds: 500
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $code := "0" }}
      {{ $message := "" }}
      {{ with .metadata.annotations }}
      {{ $code = or (index . "@EXIT@") "0" }}
      {{ $message = or (index . "@TERM@") "" }}
      {{ end }}
      conditions:
      - {type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "False", reason: PodCompleted,
         lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        started: false
        restartCount: 0
        state:
          terminated:
            exitCode: {{ $code }}
            reason: {{ if eq $code "0" }}Completed{{ else }}Error{{ end }}
            message: {{ $message | Quote }}
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      phase: {{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}
"""

_POD_GONE = """
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: aiapp-pod-gone
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: Exists}
  next:
    finalizers: {empty: true}
    delete: true
"""

# The templates name the annotations through markers, since Go's {{ }} clash with str.format.
STAGES = (
    "---".join([_NODE_READY, _POD_RUNNING, _POD_WAITING, _JOB_POD_DONE, _POD_GONE])
    .replace("@WAITING@", WAITING_REASON)
    .replace("@MESSAGE@", WAITING_MESSAGE)
    .replace("@EXIT@", EXIT_CODE)
    .replace("@TERM@", TERMINATION_MESSAGE)
)

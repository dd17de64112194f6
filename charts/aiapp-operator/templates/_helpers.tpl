{{/* Names are cut to 63 characters, the limit of a label value and a DNS label. */}}
{{- define "aiapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aiapp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aiapp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aiapp
{{ include "aiapp.selectorLabels" . }}
{{- end }}

{{- define "aiapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aiapp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aiapp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The aiapp image: a digest pins it; otherwise the tag, defaulting to the appVersion. */}}
{{- define "aiapp.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "aiapp.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "aiapp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Cluster-wide when no namespaces are listed; the RBAC and peering follow this choice. */}}
{{- define "aiapp.clusterwide" -}}
{{- if not .Values.operator.watchNamespaces }}true{{ end }}
{{- end }}

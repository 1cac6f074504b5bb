{{/* Chart name, overridable with nameOverride. */}}
{{- define "dcs-task-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full object name: fullnameOverride, else <release>-<chart> (just <release> when the release name
already contains the chart name). Truncated to 63 characters, the DNS label limit.
*/}}
{{- define "dcs-task-operator.fullname" -}}
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

{{- define "dcs-task-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "dcs-task-operator.labels" -}}
helm.sh/chart: {{ include "dcs-task-operator.chart" . }}
{{ include "dcs-task-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: dcs-task-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods; never change them between versions. */}}
{{- define "dcs-task-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dcs-task-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dcs-task-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dcs-task-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when more than one replica runs, so they must elect a leader. */}}
{{- define "dcs-task-operator.leaderElection" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The Lease the replicas compete for: one per release, so two releases never share it. */}}
{{- define "dcs-task-operator.leaseName" -}}
{{- include "dcs-task-operator.fullname" . }}
{{- end }}

{{- define "dcs-task-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules the operator needs in every namespace it watches, and nothing more:
read its queries (and delete those whose spec.ttlAfterResolved has passed), write their status, read
the Secrets queries name (through a watch cache, hence list/watch), and record Events about the
queries.
*/}}
{{- define "dcs-task-operator.watchRules" -}}
- apiGroups: ["dcs.hwcloud.dev"]
  resources: ["dcstaskqueries"]
  # delete: spec.ttlAfterResolved removes a resolved waiter (the status subresource needs none).
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["dcs.hwcloud.dev"]
  resources: ["dcstaskqueries/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

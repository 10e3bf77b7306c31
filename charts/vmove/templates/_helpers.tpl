{{/* Chart name, or nameOverride. */}}
{{- define "vmove.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Base of every object name: the release name when it already says vmove (`helm install vmove`
gives vmove-controller and vmove-agent), else <release>-vmove. Cut to leave room for the
-controller/-agent suffixes within 63 characters.
*/}}
{{- define "vmove.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else if contains (include "vmove.name" .) .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "vmove.name" .) | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "vmove.controllerName" -}}
{{- include "vmove.fullname" . }}-controller
{{- end }}

{{/* A controller shard's Deployment and PDB: (list $ SHARD); no shard is the one controller. */}}
{{- define "vmove.controllerShardName" -}}
{{- include "vmove.controllerName" (index . 0) }}{{ with index . 1 }}-{{ . }}{{ end }}
{{- end }}

{{/* What a shard's Deployment selects its pods by: (list $ SHARD); the shard's label only when sharded. */}}
{{- define "vmove.controllerSelectorLabels" -}}
{{ include "vmove.selectorLabels" (list (index . 0) "vmove-controller") }}
{{- with index . 1 }}
vmove.dev/shard: {{ . }}
{{- end }}
{{- end }}

{{- define "vmove.agentName" -}}
{{- include "vmove.fullname" . }}-agent
{{- end }}

{{/* The identities agents know callers by (TokenReview answers with these names). */}}
{{- define "vmove.controllerUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "vmove.controllerName" . }}
{{- end }}

{{- define "vmove.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "vmove.agentName" . }}
{{- end }}

{{/* Labels on every object; call with (list $ "vmove-controller"|"vmove-agent"). */}}
{{- define "vmove.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: vmove
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
{{ include "vmove.selectorLabels" . }}
{{- end }}

{{/* Labels of pods: no chart version, so a chart upgrade alone restarts nothing. */}}
{{- define "vmove.podLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/part-of: vmove
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
{{ include "vmove.selectorLabels" . }}
{{- end }}

{{/* What the Deployment and DaemonSet select their pods by (never changes on upgrade). */}}
{{- define "vmove.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "vmove.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "vmove.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The rules of one object in a copy of config/rbac/ (files/rbac/*.yaml), so the chart grants
exactly what the local control plane grants. Call with (list $ "files/rbac/controller.yaml" "ClusterRole").
*/}}
{{- define "vmove.rbacRules" -}}
{{- $root := index . 0 }}
{{- $file := index . 1 }}
{{- $kind := index . 2 }}
{{- $found := list }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" ($root.Files.Get $file) -1 }}
{{- $obj := fromYaml $doc }}
{{- if eq (get $obj "kind") $kind }}
{{- $found = append $found $obj }}
{{- end }}
{{- end }}
{{- if ne (len $found) 1 }}
{{- fail (printf "%s: expected one %s, found %d" $file $kind (len $found)) }}
{{- end }}
{{- toYaml (index $found 0).rules }}
{{- end }}

{{/* What values.schema.json cannot say. */}}
{{- define "vmove.validate" -}}
{{- if and (eq .Values.auth.mode "shared-secret") (not .Values.auth.existingSecret) }}
{{- fail "auth.mode shared-secret needs auth.existingSecret: a Secret in the release namespace whose auth.secretKey holds 16+ characters" }}
{{- end }}
{{- end }}

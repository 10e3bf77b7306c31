{{/* Names of the agents' certificate objects. */}}
{{- define "vmove.agentTlsSecret" -}}{{ include "vmove.agentName" . }}-tls{{- end }}
{{- define "vmove.agentCaSecret" -}}{{ include "vmove.agentName" . }}-ca{{- end }}

{{/*
The hypervisor nodes to issue certificates for, as JSON [{name, addresses}]: the Nodes the API
server lists that match agent.nodeSelector (lookup; none under `helm template`), then tls.nodes.
*/}}
{{- define "vmove.tlsNodes" -}}
{{- $out := list }}
{{- $seen := dict }}
{{- $selector := .Values.agent.nodeSelector | default dict }}
{{- $nodes := lookup "v1" "Node" "" "" }}
{{- range ($nodes.items | default list) }}
{{- $labels := .metadata.labels | default dict }}
{{- $match := true }}
{{- range $k, $v := $selector }}
{{- if and (not (kindIs "invalid" $v)) (ne (toString (index $labels $k)) (toString $v)) }}{{- $match = false }}{{- end }}
{{- end }}
{{- if $match }}
{{- $addrs := list }}
{{- range (.status.addresses | default list) }}
{{- if or (eq .type "InternalIP") (eq .type "ExternalIP") }}{{- $addrs = append $addrs .address }}{{- end }}
{{- end }}
{{- $out = append $out (dict "name" .metadata.name "addresses" $addrs) }}
{{- $_ := set $seen .metadata.name true }}
{{- end }}
{{- end }}
{{- range .Values.tls.nodes }}
{{- if not (hasKey $seen .name) }}
{{- $out = append $out (dict "name" .name "addresses" (.addresses | default list)) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

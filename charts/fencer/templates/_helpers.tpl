{{/* Object names: "<release>-fencer", or just the release name when it already contains "fencer". */}}
{{- define "fencer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fencer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The labels of every object. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "fencer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "fencer.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: fencer
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The labels a selector uses: stable across upgrades. */}}
{{- define "fencer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fencer.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* "repository:tag" or "repository@digest"; the tag defaults to the chart's appVersion. */}}
{{- define "fencer.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "fencer.operatorServiceAccount" -}}{{ include "fencer.fullname" . }}-operator{{- end -}}
{{- define "fencer.agentServiceAccount" -}}{{ include "fencer.fullname" . }}-agent{{- end -}}
{{- define "fencer.settings" -}}{{ include "fencer.fullname" . }}-settings{{- end -}}

{{/* Pod annotations: a settings checksum (a change rolls the pods) and, when asked, Azure NPM's scrape
     marker. Call with (dict "ctx" $ "scrapeable" true|false). */}}
{{- define "fencer.podAnnotations" -}}
checksum/settings: {{ include (print .ctx.Template.BasePath "/settings.yaml") .ctx | sha256sum }}
{{- if .scrapeable }}
azure.npm/scrapeable: ""
{{- end }}
{{- end -}}

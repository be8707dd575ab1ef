{{- define "hookseal-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hookseal-app.fullname" -}}
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

{{- define "hookseal-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookseal-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The `helm test` pod's own labels: not the Deployment's selector (the Service, PDB and
NetworkPolicy must not pick it up), admitted to the https port by the NetworkPolicy. */}}
{{- define "hookseal-app.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "hookseal-app.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hookseal-app.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "hookseal-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hookseal-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hookseal-app.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The context every hookseal-lib template takes. The chart owns the upstream URL: the app's port
on pod-local loopback.
*/}}
{{- define "hookseal-app.px" -}}
{{- $proxy := mergeOverwrite (deepCopy .Values.proxy) (dict "upstream" (dict "url" (printf "http://127.0.0.1:%d" (int64 .Values.app.port)))) -}}
{{- if eq (int64 .Values.app.port) (int64 $proxy.ports.https) | or (eq (int64 .Values.app.port) (int64 $proxy.ports.admin)) -}}
{{- fail "app.port must differ from proxy.ports.https and proxy.ports.admin" -}}
{{- end -}}
{{- toYaml (dict "proxy" $proxy "name" (printf "%s-config" (include "hookseal-app.fullname" .))) -}}
{{- end -}}

{{- define "hookseal-app.appImage" -}}
{{- $i := .Values.app.image -}}
{{- $repo := required "app.image.repository is required: the image of the application hookseal protects" $i.repository -}}
{{- if $i.digest -}}{{ printf "%s@%s" $repo $i.digest }}{{- else -}}{{ printf "%s:%s" $repo (toString (required "app.image.tag (or app.image.digest) is required" $i.tag)) }}{{- end -}}
{{- end -}}

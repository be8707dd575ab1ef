{{/*
The release notes (NOTES.txt is only this include, so the tests can render the notes with
`helm template` on helm v3 and v4 alike).
*/}}
{{- define "hookseal-app.notes" -}}
{{- $px := include "hookseal-app.px" . | fromYaml -}}
{{- $_ := set $px "root" . -}}
{{- $p := $px.proxy -}}
{{- $full := include "hookseal-app.fullname" . -}}
{{- $scheme := ternary "https" "http" $p.tls.enabled -}}
hookseal is in front of {{ include "hookseal-app.appImage" . }} in {{ .Release.Namespace }}/{{ $full }}.

Sidecar: {{ if $p.nativeSidecar }}native (initContainer with restartPolicy: Always): it is ready before
the app starts and stops after the app exits.{{ else }}classic container beside the app (no start/stop ordering;
use nativeSidecar: true on Kubernetes >= 1.29).{{ end }}

Routes ({{ $scheme }}://{{ $full }}.{{ .Release.Namespace }}.svc:{{ .Values.service.port }}):
{{- range .Values.proxy.routes }}
  {{ .name }}: {{ .path | default (printf "%s*" (.pathPrefix | default "")) }} ({{ .scheme }}{{ if eq (default "enforce" .mode) "observe" }}, observe only{{ end }})
{{- end }}

Try it from your machine:
  kubectl -n {{ .Release.Namespace }} port-forward svc/{{ $full }} 8443:{{ .Values.service.port }}
  curl -k -i -X POST {{ $scheme }}://127.0.0.1:8443/<route path> -d '{}'     # unsigned: 400 missing_signature

The app listens on 127.0.0.1:{{ .Values.app.port }} inside the pod and is in no Service{{ if .Values.networkPolicy.enabled }}; the
NetworkPolicy admits only ports {{ $p.ports.https }} and {{ $p.ports.admin }}{{ end }}.

Admin (/healthz /readyz /metrics) is on port {{ $p.ports.admin }}, not on the public Service:
  kubectl -n {{ .Release.Namespace }} port-forward deploy/{{ $full }} {{ $p.ports.admin }}
  curl -s 127.0.0.1:{{ $p.ports.admin }}/metrics | grep hookseal_requests_total
{{- if not (or .Values.metrics.podMonitor.enabled .Values.metrics.serviceMonitor.enabled) }}
  (Prometheus Operator: set metrics.podMonitor.enabled=true to scrape it.)
{{- end }}

{{ include "hookseal-app.expectedSecrets" . }}

Rotation: the TLS Secret{{ if $p.tls.enabled }} ({{ include "hookseal.tlsSecretName" $px }}){{ end }} and route Secrets are mounted as files, without
subPath; when they change the kubelet swaps them in place (within about a minute) and hookseal
reloads without a restart. Secrets passed as env vars only change on a restart.

Check it end to end:
  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}
{{- if not (include "hookseal-app.testRoute" .) }}
  (no route the test can fake a signature for: it will not run. Set tests.route.)
{{- end }}
{{- end -}}

{{/* The Secrets (and keys) the pods mount, with a `kubectl create secret` line for each, plus
the env vars and files routes read. */}}
{{- define "hookseal-app.expectedSecrets" -}}
{{- $px := include "hookseal-app.px" . | fromYaml -}}
{{- $_ := set $px "root" . -}}
{{- $p := $px.proxy -}}
{{- $ns := .Release.Namespace -}}
{{- $byName := dict -}}
{{- $envs := list -}}
{{- $files := list -}}
{{- range $r := $p.routes }}
{{- range $s := $r.secrets }}
{{- if $s.secretName }}
{{- $keys := get $byName $s.secretName | default dict }}
{{- $_ := set $keys $s.key (printf "route %s" $r.name) }}
{{- $_ := set $byName $s.secretName $keys }}
{{- else if $s.env }}
{{- $envs = append $envs (printf "$%s (route %s)" $s.env $r.name) }}
{{- else if $s.file }}
{{- $files = append $files (printf "%s (route %s)" $s.file $r.name) }}
{{- end }}
{{- end }}
{{- end }}
{{- with $p.replay.urlSecret }}{{ if .name }}
{{- $keys := get $byName .name | default dict }}
{{- $_ := set $keys .key "proxy.replay.urlSecret: the whole redis:// URL, password included" }}
{{- $_ := set $byName .name $keys }}
{{- end }}{{ end -}}
Secrets this release expects in namespace {{ $ns }} (the chart never creates them; a pod
waits in ContainerCreating until they exist):
{{- if $p.tls.enabled }}
{{- $tls := include "hookseal.tlsSecretName" $px }}
{{- if ($p.tls.certManager | default dict).enabled }}
  {{ $tls }}: kubernetes.io/tls, issued and renewed by cert-manager (Certificate {{ $tls }}).
{{- else }}
  {{ $tls }}: kubernetes.io/tls, keys tls.crt and tls.key{{ if $p.tls.clientCA }} and ca.crt (client CA){{ end }}
{{- if $p.tls.clientCA }}
    kubectl -n {{ $ns }} create secret generic {{ $tls }} --type=kubernetes.io/tls \
      --from-file=tls.crt=server.crt --from-file=tls.key=server.key --from-file=ca.crt=client-ca.crt
{{- else }}
    kubectl -n {{ $ns }} create secret tls {{ $tls }} --cert=server.crt --key=server.key
{{- end }}
{{- end }}
{{- end }}
{{- range $name := keys $byName | sortAlpha }}
{{- $keys := get $byName $name }}
  {{ $name }}: {{ range $i, $k := keys $keys | sortAlpha }}{{ if $i }}, {{ end }}key {{ $k }} ({{ get $keys $k }}){{ end }}
    kubectl -n {{ $ns }} create secret generic {{ $name }}{{ range $k := keys $keys | sortAlpha }} --from-literal={{ $k }}='...'{{ end }}
{{- end }}
{{- if $envs }}
Environment variables routes read (set them with proxy.env, e.g. valueFrom.secretKeyRef; they
change only on a restart): {{ join ", " $envs }}
{{- end }}
{{- if $files }}
Files routes read (mount them with extraVolumes and proxy.extraVolumeMounts): {{ join ", " $files }}
{{- end }}
{{- end -}}

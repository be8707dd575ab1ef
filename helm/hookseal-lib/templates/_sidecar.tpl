{{/*
Named templates that put hookseal into a pod. Every one takes the same context:

  dict "proxy" .Values.proxy "root" $            (optionally "name": the ConfigMap name)

  hookseal.podAnnotations   checksum of the rendered config (pods roll when it changes)
  hookseal.initContainers   the sidecar as a native sidecar (nativeSidecar: true), else nothing
  hookseal.containers       the sidecar as a classic container (nativeSidecar: false), else nothing
  hookseal.volumes          config, TLS and route-secret volumes
  hookseal.configMap        the ConfigMap holding hookseal.toml
  hookseal.certificate      a cert-manager Certificate, with tls.certManager.enabled
  hookseal.terminationGracePeriodSeconds   drain_delay + shutdown_grace + "extraSeconds" + 5

No volume is mounted with subPath: the kubelet updates Secret, ConfigMap and projected volumes
in place (an atomic swap of the ..data symlink), and hookseal reloads when that happens.
*/}}

{{- define "hookseal.configMapName" -}}
{{- if .proxy.existingConfigMap -}}
{{- .proxy.existingConfigMap -}}
{{- else -}}
{{- default (printf "%s-hookseal" .root.Release.Name) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hookseal.image" -}}
{{- $i := .proxy.image -}}
{{- $repo := required "proxy.image.repository is required: no public hookseal image is published; build the repository's Dockerfile, push it to your registry and name it here (helm/README.md, \"Build and push the image\")" $i.repository -}}
{{- if $i.digest -}}{{ printf "%s@%s" $repo $i.digest }}{{- else -}}{{ printf "%s:%s" $repo (toString $i.tag) }}{{- end -}}
{{- end -}}

{{/* The kubernetes.io/tls Secret hookseal mounts: tls.existingSecret, or the Secret of the
Certificate that tls.certManager creates. Empty when neither is set. */}}
{{- define "hookseal.tlsSecretName" -}}
{{- if .proxy.tls.existingSecret -}}
{{- .proxy.tls.existingSecret -}}
{{- else if (.proxy.tls.certManager | default dict).enabled -}}
{{- printf "%s-hookseal-tls" .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A cert-manager Certificate for the listener, with tls.certManager.enabled (else nothing).
Context as above. */}}
{{- define "hookseal.certificate" -}}
{{- $p := .proxy -}}
{{- $cm := $p.tls.certManager | default dict -}}
{{- if and $p.tls.enabled $cm.enabled -}}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ include "hookseal.tlsSecretName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    app.kubernetes.io/component: hookseal
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    app.kubernetes.io/managed-by: {{ .root.Release.Service }}
spec:
  secretName: {{ include "hookseal.tlsSecretName" . }}
  issuerRef:
    name: {{ required "proxy.tls.certManager.issuerRef.name is required: the Issuer or ClusterIssuer that signs hookseal's certificate" $cm.issuerRef.name }}
    kind: {{ $cm.issuerRef.kind | default "Issuer" }}
    group: {{ $cm.issuerRef.group | default "cert-manager.io" }}
  dnsNames:
    {{- if not $cm.dnsNames }}{{ fail "proxy.tls.certManager.dnsNames is required: the host names senders (and the ingress) use to reach hookseal" }}{{ end }}
    {{- toYaml $cm.dnsNames | nindent 4 }}
  {{- with $cm.duration }}
  duration: {{ . }}
  {{- end }}
  {{- with $cm.renewBefore }}
  renewBefore: {{ . }}
  {{- end }}
  privateKey:
    rotationPolicy: Always
    {{- with $cm.privateKey }}
    {{- with .algorithm }}
    algorithm: {{ . }}
    {{- end }}
    {{- if and .size (ne (toString .algorithm) "Ed25519") }}
    size: {{ int64 .size }}
    {{- end }}
    {{- end }}
  usages:
    - server auth
{{- end -}}
{{- end -}}

{{- define "hookseal.podAnnotations" -}}
{{- if not .proxy.existingConfigMap -}}
checksum/hookseal-config: {{ include "hookseal.configToml" . | sha256sum }}
{{- end -}}
{{- end -}}

{{- define "hookseal.configMap" -}}
{{- if not .proxy.existingConfigMap -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "hookseal.configMapName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    app.kubernetes.io/component: hookseal
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    app.kubernetes.io/managed-by: {{ .root.Release.Service }}
data:
  hookseal.toml: |
{{ include "hookseal.configToml" . | indent 4 }}
{{- end -}}
{{- end -}}

{{- define "hookseal.initContainers" -}}
{{- if .proxy.nativeSidecar -}}
{{ include "hookseal.container" . }}
{{- end -}}
{{- end -}}

{{- define "hookseal.containers" -}}
{{- if not .proxy.nativeSidecar -}}
{{ include "hookseal.container" . }}
{{- end -}}
{{- end -}}

{{- define "hookseal.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
periodSeconds: {{ .probe.periodSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
timeoutSeconds: 1
{{- end -}}

{{/* The container itself, as one list item. */}}
{{- define "hookseal.container" -}}
{{- $p := .proxy -}}
{{- if and $p.tls.enabled (not (include "hookseal.tlsSecretName" .)) -}}
{{- fail "proxy.tls.existingSecret is required: name a kubernetes.io/tls Secret (for example a cert-manager Certificate's secretName), set proxy.tls.certManager.enabled=true to have one issued, or set proxy.tls.enabled=false if TLS ends before the pod" -}}
{{- end -}}
{{- $admin := int64 $p.ports.admin -}}
- name: hookseal
  image: {{ include "hookseal.image" . | quote }}
  imagePullPolicy: {{ $p.image.pullPolicy }}
  {{- if $p.nativeSidecar }}
  # Native sidecar (KEP-753): starts before the app and is ready first, stops after it.
  restartPolicy: Always
  {{- end }}
  args: ["run", "--config", {{ printf "%s/hookseal.toml" (trimSuffix "/" $p.configMountPath) | quote }}]
  env:
    - name: HOOKSEAL_LOG
      value: {{ $p.log.level | quote }}
    - name: HOOKSEAL_LOG_FORMAT
      value: {{ $p.log.format | quote }}
    {{- with $p.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $p.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: https
      containerPort: {{ int64 $p.ports.https }}
      protocol: TCP
    - name: admin
      containerPort: {{ $admin }}
      protocol: TCP
  {{- if $p.startupProbe.enabled }}
  startupProbe:
    {{- include "hookseal.probe" (dict "path" "/readyz" "port" $admin "probe" $p.startupProbe) | nindent 4 }}
  {{- end }}
  {{- if $p.readinessProbe.enabled }}
  readinessProbe:
    {{- include "hookseal.probe" (dict "path" "/readyz" "port" $admin "probe" $p.readinessProbe) | nindent 4 }}
  {{- end }}
  {{- if $p.livenessProbe.enabled }}
  livenessProbe:
    {{- include "hookseal.probe" (dict "path" "/healthz" "port" $admin "probe" $p.livenessProbe) | nindent 4 }}
  {{- end }}
  {{- with $p.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: hookseal-config
      mountPath: {{ $p.configMountPath }}
      readOnly: true
    {{- if $p.tls.enabled }}
    - name: hookseal-tls
      mountPath: {{ $p.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- if include "hookseal.secretSources" . }}
    - name: hookseal-secrets
      mountPath: {{ $p.secretsMountPath }}
      readOnly: true
    {{- end }}
    {{- if include "hookseal.spoolVolume" $p }}
    - name: hookseal-spool
      mountPath: {{ include "hookseal.spoolPath" $p }}
    {{- end }}
    {{- with $p.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* "true" when a route is queued on the disk spool: the pod gets the spool volume. */}}
{{- define "hookseal.spoolVolume" -}}
{{- if and (include "hookseal.queued" .) (eq ((.queue | default dict).store | default "disk") "disk") }}true{{ end -}}
{{- end -}}

{{/* Projected-volume sources for every existing Secret the routes (secrets, verifyToken,
clientState, jwt.keys) and proxy.replay.urlSecret name (deduplicated). */}}
{{- define "hookseal.secretSources" -}}
{{- $byName := dict -}}
{{- range $r := .proxy.routes -}}
{{- $jwtKeys := dig "keys" "" ($r.jwt | default dict) -}}
{{- range $s := concat ($r.secrets | default list) (compact (list $r.verifyToken $r.clientState $jwtKeys)) -}}
{{- if $s.secretName -}}
{{- $keys := get $byName $s.secretName | default dict -}}
{{- $_ := set $keys (required "secrets[].key is required with secretName" $s.key) true -}}
{{- $_ := set $byName $s.secretName $keys -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .proxy.replay.urlSecret }}{{ if .name -}}
{{- $keys := get $byName .name | default dict -}}
{{- $_ := set $keys (required "proxy.replay.urlSecret.key is required with urlSecret.name" .key) true -}}
{{- $_ := set $byName .name $keys -}}
{{- end }}{{ end -}}
{{- if include "hookseal.queued" .proxy }}{{ with (.proxy.queue | default dict).urlSecret }}{{ if .name -}}
{{- $keys := get $byName .name | default dict -}}
{{- $_ := set $keys (required "proxy.queue.urlSecret.key is required with urlSecret.name" .key) true -}}
{{- $_ := set $byName .name $keys -}}
{{- end }}{{ end }}{{ end -}}
{{- range $name := keys $byName | sortAlpha }}
- secret:
    name: {{ $name }}
    items:
      {{- range $key := keys (get $byName $name) | sortAlpha }}
      - key: {{ $key }}
        path: {{ printf "%s/%s" $name $key }}
      {{- end }}
{{- end -}}
{{- end -}}

{{- define "hookseal.volumes" -}}
{{- $p := .proxy -}}
- name: hookseal-config
  configMap:
    name: {{ include "hookseal.configMapName" . }}
{{- if $p.tls.enabled }}
- name: hookseal-tls
  secret:
    secretName: {{ include "hookseal.tlsSecretName" . }}
    # Only the sidecar mounts this volume, and it runs as one uid: readable files need no fsGroup.
    defaultMode: 292 # 0444
{{- end }}
{{- if include "hookseal.spoolVolume" $p }}
{{- $q := $p.queue | default dict }}
# The spool of queued routes (README "Queued delivery"): emptyDir survives a container
# restart, not the pod; a PersistentVolumeClaim keeps it across pods.
- name: hookseal-spool
  {{- if $q.persistentVolumeClaim }}
  persistentVolumeClaim:
    claimName: {{ $q.persistentVolumeClaim }}
  {{- else }}
  emptyDir:
    {{- with $q.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
{{- with include "hookseal.secretSources" . }}
- name: hookseal-secrets
  projected:
    defaultMode: 292 # 0444
    sources:
      {{- trim . | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "hookseal.terminationGracePeriodSeconds" -}}
{{- $l := .proxy.limits -}}
{{- add (include "hookseal.durationSeconds" $l.drainDelay) (include "hookseal.durationSeconds" $l.shutdownGrace) (default 0 .extraSeconds) 5 -}}
{{- end -}}

{{/*
hookseal config TOML, rendered from .proxy (the values under `proxy:`).
Context: dict "proxy" <values> "root" $.
The chart owns the keys that must agree with the pod spec: listen and admin addresses, TLS
paths, secret file paths and (in the application chart) the upstream URL. Strings go through
toJson: JSON string escaping is valid TOML basic-string escaping. Numbers are forced to
integers (YAML numbers arrive as floats and would print as 4096.0).
*/}}
{{/*
The config keys that come from values one to one, section by section: one line per key,
"<valuesKey> <kind>". The TOML key is the values key in snake_case; kind is str (a string,
e.g. a duration), int, float, size (integer bytes or "64KiB"), bool or list. A key whose value is
null or "" is left out, so hookseal's own default applies. Adding a config key to the chart is
one line here, one in values.yaml and one in values.schema.json (helm/tests/config_keys.txt
lists every key; the tests fail until all three agree with hookseal's config reference).
Keys the chart owns (listen and admin addresses, TLS and secret file paths, the upstream URL in
the application chart) and keys with a shape of their own (replay.url, route secrets, paths,
[route.hmac], verifyToken, clientState, [route.jwt], event, dedupeKey) are written by hookseal.configToml below. A new section is one more block here: it is rendered
as [<section in snake_case>] from proxy.<section>.
*/}}
{{- define "hookseal.configKeys" -}}
listen:
  - trustedProxies list
limits:
  - maxBodyBytes size
  - headerTimeout str
  - bodyTimeout str
  - maxConnections int
  - maxHeaders int
  - maxHeaderBytes size
  - shutdownGrace str
  - drainDelay str
  - idleTimeout str
  - maxConcurrentStreams int
  - writeTimeout str
upstream:
  - connectTimeout str
  - timeout str
  - maxConnections int
replay:
  - capacity int
  - onStoreError str
  - commandTimeout str
queue:
  - claimAfter str
  - maxBytes size
  - maxEntries int
delivery:
  - mode str
  - maxAttempts int
  - maxAge str
  - concurrency int
  - rate int
  - ordered bool
route:
  - methods list
  - tolerance str
  - dedupe bool
  - maxBodyBytes size
  - upstream str
  - mode str
  - publicUrl str
  - allowFrom list
  - replayCapacity int
  - events list
  - dedupeWindow str
  - topics list
  - certHost str
  - confirm str
  - caFile str
forwarding:
  - keep list
debug:
  - rejections int
tracing:
  - otlpEndpoint str
  - serviceName str
  - sampleRatio float
{{- end -}}

{{/* The lines of one section: dict "values" <map> "keys" <list of "key kind">. */}}
{{- define "hookseal.configLines" -}}
{{- $v := .values | default dict -}}
{{- range $line := .keys }}
{{- $f := splitList " " $line }}
{{- $k := index $f 0 }}{{ $kind := index $f 1 }}
{{- $x := get $v $k }}
{{- if and (hasKey $v $k) (not (kindIs "invalid" $x)) (not (and (kindIs "string" $x) (eq $x ""))) }}
{{ snakecase $k }} = {{ if eq $kind "size" }}{{ include "hookseal.tomlSize" $x }}{{ else if eq $kind "int" }}{{ int64 $x }}{{ else if eq $kind "float" }}{{ float64 $x }}{{ else if eq $kind "bool" }}{{ $x }}{{ else if eq $kind "list" }}{{ toJson $x }}{{ else }}{{ toString $x | toJson }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "hookseal.configToml" -}}
{{- $p := .proxy -}}
{{- $keys := include "hookseal.configKeys" . | fromYaml -}}
# Rendered by the hookseal chart. Key reference: hookseal's README, "Config reference".
[listen]
address = {{ printf "0.0.0.0:%d" (int64 $p.ports.https) | toJson }}
{{- if $p.tls.enabled }}
{{- $dir := trimSuffix "/" $p.tls.mountPath }}
{{- if $p.tls.clientCA }}
tls = { cert = {{ printf "%s/tls.crt" $dir | toJson }}, key = {{ printf "%s/tls.key" $dir | toJson }}, client_ca = {{ printf "%s/ca.crt" $dir | toJson }} }
{{- else }}
tls = { cert = {{ printf "%s/tls.crt" $dir | toJson }}, key = {{ printf "%s/tls.key" $dir | toJson }} }
{{- end }}
{{- end }}
{{- include "hookseal.configLines" (dict "values" $p.listen "keys" $keys.listen) }}

[admin]
address = {{ printf "0.0.0.0:%d" (int64 $p.ports.admin) | toJson }}

[limits]
{{- include "hookseal.configLines" (dict "values" $p.limits "keys" $keys.limits) }}
max_buffered_bytes = {{ include "hookseal.maxBufferedBytes" $p }}

[upstream]
url = {{ $p.upstream.url | toJson }}
{{- include "hookseal.configLines" (dict "values" $p.upstream "keys" $keys.upstream) }}

[replay]
store = {{ $p.replay.store | toJson }}
{{- $urlSecret := $p.replay.urlSecret | default dict }}
{{- if and $p.replay.url $urlSecret.name }}
{{- fail "proxy.replay: set url or urlSecret, not both" }}
{{- else if $urlSecret.name }}
url = { file = {{ include "hookseal.secretFilePath" (dict "proxy" $p "secret" (dict "secretName" $urlSecret.name "key" $urlSecret.key)) | toJson }} }
{{- else if $p.replay.url }}
url = {{ $p.replay.url | toJson }}
{{- else if eq $p.replay.store "redis" }}
{{- fail "proxy.replay.url (or urlSecret) is required when proxy.replay.store is redis" }}
{{- end }}
{{- include "hookseal.configLines" (dict "values" $p.replay "keys" $keys.replay) }}
{{- /* Any other section of hookseal.configKeys: [<section>] from proxy.<section>, when it sets a key. */}}
{{- range $section := keys $keys | sortAlpha }}
{{- if not (has $section (list "listen" "limits" "upstream" "replay" "route" "queue" "delivery")) }}
{{- with include "hookseal.configLines" (dict "values" (get $p $section) "keys" (get $keys $section)) }}

[{{ snakecase $section }}]
{{- . }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "hookseal.queued" $p }}

[queue]
{{- $q := $p.queue | default dict }}
store = {{ $q.store | default "disk" | toJson }}
path = {{ include "hookseal.spoolPath" $p | toJson }}
{{- $qSecret := $q.urlSecret | default dict }}
{{- if and $q.url $qSecret.name }}
{{- fail "proxy.queue: set url or urlSecret, not both" }}
{{- else if $qSecret.name }}
url = { file = {{ include "hookseal.secretFilePath" (dict "proxy" $p "secret" (dict "secretName" $qSecret.name "key" $qSecret.key)) | toJson }} }
{{- else if $q.url }}
url = {{ $q.url | toJson }}
{{- else if eq $q.store "redis" }}
{{- fail "proxy.queue.url (or urlSecret) is required when proxy.queue.store is redis" }}
{{- end }}
{{- include "hookseal.configLines" (dict "values" $q "keys" $keys.queue) }}
{{- end }}
{{- if not $p.routes }}
{{- fail "proxy.routes is empty: hookseal needs at least one [[route]] (see values.yaml)" }}
{{- end }}
{{- range $i, $r := $p.routes }}

[[route]]
name = {{ required (printf "proxy.routes[%d].name is required" $i) $r.name | toJson }}
{{- if and $r.path $r.pathPrefix }}
{{- fail (printf "proxy.routes[%d] (%s): set path or pathPrefix, not both" $i $r.name) }}
{{- else if $r.path }}
path = {{ $r.path | toJson }}
{{- else if $r.pathPrefix }}
path_prefix = {{ $r.pathPrefix | toJson }}
{{- else }}
{{- fail (printf "proxy.routes[%d] (%s): path or pathPrefix is required" $i $r.name) }}
{{- end }}
scheme = {{ required (printf "proxy.routes[%d].scheme is required" $i) $r.scheme | toJson }}
{{- if $r.secrets }}
secrets = [
{{- range $j, $s := $r.secrets }}
  { {{- with $s.id }} id = {{ toString . | toJson }},{{ end }} {{ include "hookseal.secretSource" (dict "proxy" $p "secret" $s "where" (printf "proxy.routes[%d].secrets[%d]" $i $j)) }} },
{{- end }}
]
{{- end }}
{{- include "hookseal.configLines" (dict "values" $r "keys" $keys.route) }}
{{- /* event = { header | json }, dedupe_key = "id" | "signature" | { json } (README "Events and filters"). */}}
{{- with $r.event }}
event = { {{ if .header }}header = {{ .header | toJson }}{{ else }}json = {{ .json | toJson }}{{ end }} }
{{- end }}
{{- with $r.dedupeKey }}
dedupe_key = {{ if kindIs "string" . }}{{ toJson . }}{{ else }}{ json = {{ .json | toJson }} }{{ end }}
{{- end }}
{{- with $r.verifyToken }}
verify_token = { {{ include "hookseal.secretSource" (dict "proxy" $p "secret" . "where" (printf "proxy.routes[%d].verifyToken" $i)) }} }
{{- end }}
{{- with $r.clientState }}
client_state = { {{ include "hookseal.secretSource" (dict "proxy" $p "secret" . "where" (printf "proxy.routes[%d].clientState" $i)) }} }
{{- end }}
{{- with $r.delivery }}{{ $d := . }}
[route.delivery]
{{- include "hookseal.configLines" (dict "values" $d "keys" $keys.delivery) }}
{{- if $d.backoff }}
{{- $parts := list }}
{{- range $k := list "initial" "max" }}{{ with get $d.backoff $k }}{{ $parts = append $parts (printf "%s = %s" $k (toString . | toJson)) }}{{ end }}{{ end }}
backoff = { {{ join ", " $parts }} }
{{- end }}
{{- end }}
{{- with $r.hmac }}
[route.hmac]
{{- range $k := list "header" "algorithm" "encoding" "prefix" "timestampHeader" "idHeader" "signedPayload" }}
{{- if hasKey $r.hmac $k }}
{{ snakecase $k }} = {{ get $r.hmac $k | toString | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- with $r.jwt }}
[route.jwt]
{{- with $r.jwt.jwksUrl }}
jwks_url = {{ . | toJson }}
{{- end }}
{{- with $r.jwt.keys }}
keys = { {{ include "hookseal.secretSource" (dict "proxy" $p "secret" . "where" (printf "proxy.routes[%d].jwt.keys" $i)) }} }
{{- end }}
{{- range $k := list "algorithms" "issuers" "audiences" }}
{{- if hasKey $r.jwt $k }}
{{ $k }} = {{ get $r.jwt $k | toJson }}
{{- end }}
{{- end }}
{{- with $r.jwt.leeway }}
leeway = {{ . | toString | toJson }}
{{- end }}
{{- with $r.jwt.header }}
header = {{ . | toJson }}
{{- end }}
{{- with $r.jwt.claims }}
{{- $parts := list }}
{{- range $n, $v := . }}
{{- $parts = append $parts (printf "%s = %s" (toJson $n) (toJson $v)) }}
{{- end }}
claims = { {{ join ", " $parts }} }
{{- end }}
{{- end }}
{{- end }}
{{ end -}}

{{/* A size: integer bytes as a TOML integer, "64KiB"-style strings as a string. */}}
{{- define "hookseal.tomlSize" -}}
{{- if kindIs "string" . }}{{ toJson . }}{{ else }}{{ int64 . }}{{ end -}}
{{- end -}}

{{/* One secret source (the inside of the inline table after id). */}}
{{- define "hookseal.secretSource" -}}
{{- $s := .secret -}}
{{- $n := 0 -}}
{{- range $k := list "secretName" "env" "file" }}{{ if hasKey $s $k }}{{ $n = add1 $n }}{{ end }}{{ end -}}
{{- if ne (int $n) 1 -}}
{{- fail (printf "%s: set exactly one of secretName (+key), env or file" .where) -}}
{{- end -}}
{{- if $s.secretName -}}
file = {{ include "hookseal.secretFilePath" (dict "proxy" .proxy "secret" $s) | toJson }}
{{- else if $s.env -}}
env = {{ $s.env | toJson }}
{{- else -}}
file = {{ $s.file | toJson }}
{{- end -}}
{{- end -}}

{{- define "hookseal.secretFilePath" -}}
{{- printf "%s/%s/%s" (trimSuffix "/" .proxy.secretsMountPath) .secret.secretName (required "secrets[].key is required with secretName" .secret.key) -}}
{{- end -}}

{{/*
limits.max_buffered_bytes: proxy.limits.maxBufferedBytes, else half of the sidecar's memory
limit in whole MiB, else 64MiB. Context: the proxy values.
*/}}
{{- define "hookseal.maxBufferedBytes" -}}
{{- if .limits.maxBufferedBytes -}}
{{- include "hookseal.tomlSize" .limits.maxBufferedBytes -}}
{{- else -}}
{{- $mem := "" -}}
{{- with .resources }}{{ with .limits }}{{ with .memory }}{{ $mem = toString . }}{{ end }}{{ end }}{{ end -}}
{{- if $mem -}}
{{- $n := regexFind "^[0-9]+" $mem -}}
{{- $u := trimPrefix $n $mem -}}
{{- $unit := dict "" 1 "k" 1000 "Ki" 1024 "M" 1000000 "Mi" 1048576 "G" 1000000000 "Gi" 1073741824 -}}
{{- if or (not $n) (not (hasKey $unit $u)) -}}
{{- fail (printf "proxy.resources.limits.memory %q: cannot size max_buffered_bytes from it; set proxy.limits.maxBufferedBytes" $mem) -}}
{{- end -}}
{{- printf "%dMiB" (div (mul (int64 $n) (get $unit $u)) 2097152) | toJson -}}
{{- else -}}
"64MiB"
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whole seconds (rounded up) in a duration string such as "250ms", "10s", "5m", "1h". */}}
{{- define "hookseal.durationSeconds" -}}
{{- $s := toString . -}}
{{- $n := regexFind "^[0-9]+" $s -}}
{{- $u := trimPrefix $n $s -}}
{{- if not $n }}{{ fail (printf "not a duration: %q" $s) }}{{ end -}}
{{- $v := int64 $n -}}
{{- if eq $u "ms" }}{{ div (add $v 999) 1000 }}
{{- else if eq $u "s" }}{{ $v }}
{{- else if eq $u "m" }}{{ mul $v 60 }}
{{- else if eq $u "h" }}{{ mul $v 3600 }}
{{- else }}{{ fail (printf "not a duration: %q (use ms, s, m or h)" $s) }}
{{- end -}}
{{- end -}}

{{/* "true" when a route is queued (then [queue] is written, and a disk spool mounted). */}}
{{- define "hookseal.queued" -}}
{{- range $r := .routes }}{{ with $r.delivery }}{{ if eq (.mode | default "") "queued" }}true{{ end }}{{ end }}{{ end -}}
{{- end -}}

{{/* The spool directory (proxy.queue.path). */}}
{{- define "hookseal.spoolPath" -}}
{{- (.queue | default dict).path | default "/var/lib/hookseal/spool" -}}
{{- end -}}

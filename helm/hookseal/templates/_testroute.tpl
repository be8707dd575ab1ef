{{/*
The headers a sender of each scheme would send, with a well-formed but wrong signature (all
zero bytes), as curl -H arguments. "$now" is expanded by the test pod's shell so timestamped
schemes are inside the tolerance window and the request fails on the signature itself.
Schemes not listed here (and hmac with base64url) are not faked: pick another route.
*/}}
{{- define "hookseal-app.fakeSignatureHeaders" -}}
{{- $z32hex := repeat 64 "0" -}}
{{- $z32b64 := printf "%s=" (repeat 43 "A") -}}
{{- $s := .scheme -}}
{{- if eq $s "github" -}}
-H "X-Hub-Signature-256: sha256={{ $z32hex }}" -H "X-GitHub-Delivery: helm-test-$now"
{{- else if eq $s "hotglue" -}}
-H "X-Hub-Signature: {{ repeat 40 "0" }}"
{{- else if eq $s "stripe" -}}
-H "Stripe-Signature: t=$now,v1={{ $z32hex }}"
{{- else if eq $s "slack" -}}
-H "X-Slack-Request-Timestamp: $now" -H "X-Slack-Signature: v0={{ $z32hex }}"
{{- else if eq $s "shopify" -}}
-H "X-Shopify-Hmac-Sha256: {{ $z32b64 }}" -H "X-Shopify-Webhook-Id: helm-test-$now"
{{- else if eq $s "twilio" -}}
-H "X-Twilio-Signature: {{ repeat 27 "A" }}="
{{- else if eq $s "square" -}}
-H "x-square-hmacsha256-signature: {{ $z32b64 }}"
{{- else if eq $s "paddle" -}}
-H "Paddle-Signature: ts=$now;h1={{ $z32hex }}"
{{- else if eq $s "linear" -}}
-H "Linear-Signature: {{ $z32hex }}" -H "Linear-Delivery: helm-test-$now"
{{- else if eq $s "discord" -}}
-H "X-Signature-Ed25519: {{ repeat 128 "0" }}" -H "X-Signature-Timestamp: $now"
{{- else if or (eq $s "standard-webhooks") (eq $s "svix") -}}
-H "webhook-id: msg_helmtest$now" -H "webhook-timestamp: $now" -H "webhook-signature: v1,{{ $z32b64 }}"
{{- else if eq $s "hmac" -}}
{{- $h := .hmac | default dict -}}
{{- $n := get (dict "sha1" 20 "sha256" 32 "sha512" 64) (default "sha256" $h.algorithm) | int -}}
{{- $enc := default "hex" $h.encoding -}}
{{- $sig := "" -}}
{{- if eq $enc "hex" -}}{{- $sig = repeat (mul $n 2 | int) "0" -}}
{{- else if eq $enc "base64" -}}{{- $sig = printf "%s%s" (repeat (div (add (mul $n 4) 2) 3 | int) "A") (repeat (mod (sub 3 (mod $n 3)) 3 | int) "=") -}}
{{- end -}}
{{- if and $h.header $sig -}}
-H "{{ $h.header }}: {{ default "" $h.prefix }}{{ $sig }}"
{{- with $h.timestampHeader }} -H "{{ . }}: $now"{{ end }}
{{- with $h.idHeader }} -H "{{ . }}: helm-test-$now"{{ end }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The route `helm test` uses, as YAML (empty when none fits). */}}
{{- define "hookseal-app.testRoute" -}}
{{- $found := dict -}}
{{- range $r := .Values.proxy.routes -}}
{{- if and (not $found.name) (or (not $.Values.tests.route) (eq $.Values.tests.route $r.name)) (ne (default "enforce" $r.mode) "observe") (or (not $r.methods) (has "POST" $r.methods)) -}}
{{- if include "hookseal-app.fakeSignatureHeaders" $r -}}
{{- $found = $r -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $found.name }}{{ toYaml $found }}{{ end -}}
{{- end -}}

{{/*
Names, labels, images and the values every component shares.
*/}}

{{- define "hermit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, unless the release name already holds the chart name. */}}
{{- define "hermit.fullname" -}}
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

{{/* <fullname>-<suffix>, kept within 63 characters. Call with (list $ "suffix"). */}}
{{- define "hermit.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "hermit.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "hermit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. Call with (dict "root" $ "component" "crawler"). */}}
{{- define "hermit.labels" -}}
helm.sh/chart: {{ include "hermit.chart" .root }}
{{ include "hermit.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: hermit
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Immutable selector labels. Call with (dict "root" $ "component" "crawler"). */}}
{{- define "hermit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hermit.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Label of the pods that may reach Redis (NetworkPolicy). */}}
{{- define "hermit.redisClientLabel" -}}
{{ include "hermit.fullname" . | trunc 50 | trimSuffix "-" }}-redis-client: "true"
{{- end -}}

{{/*
metadata.annotations (at indent 2, with its leading newline) of every resource, if it
has any: commonAnnotations plus extra ones. Call with (dict "root" $ "extra" map).
*/}}
{{- define "hermit.annotations" -}}
{{- $all := merge (dict) (.extra | default (dict)) .root.Values.commonAnnotations -}}
{{- if $all }}
  annotations:
    {{- toYaml $all | nindent 4 }}
{{- end }}
{{- end -}}

{{/* repository:tag or repository@digest. Call with (dict "image" .Values.image "root" $). */}}
{{- define "hermit.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{- define "hermit.crawl" -}}
{{- .Values.crawl | default .Values.spider -}}
{{- end -}}

{{- define "hermit.crawlerName" -}}{{ include "hermit.componentName" (list . "crawler") }}{{- end -}}
{{- define "hermit.redisName" -}}{{ include "hermit.componentName" (list . "redis") }}{{- end -}}
{{- define "hermit.operatorName" -}}{{ include "hermit.componentName" (list . "operator") }}{{- end -}}
{{- define "hermit.seedName" -}}{{ include "hermit.componentName" (list . "seed") }}{{- end -}}

{{/* The Secret and key of the Redis password (bundled Redis). */}}
{{- define "hermit.redisPasswordSecret" -}}
{{- .Values.redis.auth.existingSecret | default (include "hermit.redisName" .) -}}
{{- end -}}
{{- define "hermit.redisPasswordKey" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecretPasswordKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end -}}

{{/* The Secret and key of the external Redis URL. */}}
{{- define "hermit.externalRedisSecret" -}}
{{- .Values.externalRedis.existingSecret | default (include "hermit.componentName" (list . "external-redis")) -}}
{{- end -}}
{{- define "hermit.externalRedisKey" -}}
{{- if .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecretUrlKey -}}
{{- else -}}
redis-url
{{- end -}}
{{- end -}}

{{/*
The external Redis' CA certificate (externalRedis.caSecret), for a rediss:// URL whose
server a private CA signed: the volume, and its mount in a container of a pod that has it.
*/}}
{{- define "hermit.redisCaVolume" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.caSecret }}
- name: redis-ca
  secret:
    secretName: {{ .Values.externalRedis.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}
{{- define "hermit.redisCaVolumeMount" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.caSecret }}
- name: redis-ca
  mountPath: /etc/hermit/redis-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
Environment giving HERMIT_REDIS_URL (and HERMIT_CRAWL): from the external URL's Secret,
or built from the bundled Redis' Service and the password Secret. Kubernetes expands
$(REDIS_PASSWORD) because it is defined first.
*/}}
{{- define "hermit.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "hermit.redisPasswordSecret" . }}
      key: {{ include "hermit.redisPasswordKey" . }}
- name: HERMIT_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "hermit.redisName" .) .Release.Namespace | quote }}
{{- else }}
- name: HERMIT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hermit.externalRedisSecret" . }}
      key: {{ include "hermit.externalRedisKey" . }}
{{- end }}
- name: HERMIT_CRAWL
  value: {{ include "hermit.crawl" . | quote }}
{{- end -}}

{{/* Parse a Kubernetes memory quantity ("1Gi", "512M", "1e9", "1073741824") into bytes (int64). */}}
{{- define "hermit.quantityBytes" -}}
{{- $q := toString . -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 -}}
{{- $result := "" -}}
{{- range $suffix, $factor := $units -}}
{{- if and (not $result) (hasSuffix $suffix $q) -}}
{{- $number := trimSuffix $suffix $q -}}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $number -}}
{{- $result = mulf (float64 $number) $factor | int64 | toString -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not $result) (regexMatch "^[0-9]+(\\.[0-9]+)?([eE][0-9]+)?$" $q) -}}
{{- $result = float64 $q | int64 | toString -}}
{{- end -}}
{{- $result -}}
{{- end -}}

{{/* The container memory limit of the workers in bytes, or "" if none. */}}
{{- define "hermit.crawlerMemoryLimitBytes" -}}
{{- $limits := (.Values.crawler.resources | default dict).limits | default dict -}}
{{- if $limits.memory -}}
{{- include "hermit.quantityBytes" $limits.memory -}}
{{- end -}}
{{- end -}}

{{/* Soft memory budget in bytes ("" when off or not computable). */}}
{{- define "hermit.memoryBudgetBytes" -}}
{{- $b := .Values.crawler.memoryBudget -}}
{{- if $b.enabled -}}
{{- if kindIs "invalid" $b.softBytes -}}
{{- $limit := include "hermit.crawlerMemoryLimitBytes" . -}}
{{- if $limit -}}{{- mulf (float64 $limit) $b.softRatio | int64 -}}{{- end -}}
{{- else -}}
{{- $b.softBytes | int64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Hard memory limit in bytes ("" when off or not computable). */}}
{{- define "hermit.memoryHardLimitBytes" -}}
{{- $b := .Values.crawler.memoryBudget -}}
{{- if $b.enabled -}}
{{- if kindIs "invalid" $b.hardBytes -}}
{{- $limit := include "hermit.crawlerMemoryLimitBytes" . -}}
{{- if $limit -}}{{- mulf (float64 $limit) $b.hardRatio | int64 -}}{{- end -}}
{{- else -}}
{{- $b.hardBytes | int64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hermit.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.crawler.terminationGracePeriodSeconds -}}
{{- add (ceil (addf .Values.crawler.drainTimeoutSeconds .Values.crawler.metrics.finalScrapeTimeoutSeconds) | int64) 30 -}}
{{- else -}}
{{- .Values.crawler.terminationGracePeriodSeconds | int64 -}}
{{- end -}}
{{- end -}}

{{/* True when an autoscaler owns the workers' replica count. */}}
{{- define "hermit.autoscaled" -}}
{{- if or .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled -}}true{{- end -}}
{{- end -}}

{{/*
securityContext from a podSecurityContext or containerSecurityContext value; nothing
when that value is null or empty. Call with the value (inside a `with`, then nindent).
*/}}
{{- define "hermit.securityContext" -}}
{{- with . -}}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
The ServiceAccount a component runs as. Call with (dict "serviceAccount" .Values.crawler.serviceAccount
"created" <the name the chart gives the one it creates>).
*/}}
{{- define "hermit.serviceAccountName" -}}
{{- if .serviceAccount.create -}}
{{- .serviceAccount.name | default .created -}}
{{- else -}}
{{- .serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "hermit.crawlerServiceAccountName" -}}
{{- include "hermit.serviceAccountName" (dict "serviceAccount" .Values.crawler.serviceAccount "created" (include "hermit.crawlerName" .)) -}}
{{- end -}}
{{- define "hermit.operatorServiceAccountName" -}}
{{- include "hermit.serviceAccountName" (dict "serviceAccount" .Values.operator.serviceAccount "created" (include "hermit.operatorName" .)) -}}
{{- end -}}

{{/*
A worker probe: GET /healthz on the metrics port, which answers without rendering
metrics or reading Redis (crawler/hermit/observability/metrics_app.py). Nothing when
the probe is disabled. Call with one of .Values.crawler.{startup,liveness,readiness}Probe.
*/}}
{{- define "hermit.crawlerProbe" -}}
{{- if .enabled -}}
httpGet:
  path: /healthz
  port: metrics
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end -}}
{{- end -}}

{{- define "hermit.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
A value as Scrapy reads it from `-s NAME=VALUE`: strings as they are, whole numbers
without an exponent (Helm holds numbers as floats: 1000000 would print as 1e+06, which
Scrapy's getint rejects), everything else (lists, dicts, booleans) as JSON, which
Scrapy's getlist/getdict/getbool accept.
*/}}
{{- define "hermit.settingValue" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else if kindIs "float64" . -}}
{{- . -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}
{{- . -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end -}}

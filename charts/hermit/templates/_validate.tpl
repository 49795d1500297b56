{{/*
Cross-field rules that values.schema.json can't express. Every broken rule adds one
message; all of them are reported at once, then rendering fails.
*/}}
{{- define "hermit.validateValues" -}}
{{- $messages := list -}}
{{- $v := .Values -}}

{{- /* Redis: bundled or external, never neither. */ -}}
{{- if and (not $v.redis.enabled) (not $v.externalRedis.url) (not $v.externalRedis.existingSecret) -}}
{{- $messages = append $messages "externalRedis: redis.enabled is false, so set externalRedis.url or externalRedis.existingSecret (the URL of the Redis the crawl uses)" -}}
{{- end -}}
{{- if and $v.redis.enabled (or $v.externalRedis.url $v.externalRedis.existingSecret) -}}
{{- $messages = append $messages "externalRedis: set only when redis.enabled is false (the bundled Redis would be ignored)" -}}
{{- end -}}
{{- if and $v.redis.enabled $v.externalRedis.caSecret -}}
{{- $messages = append $messages "externalRedis.caSecret: set only when redis.enabled is false (the bundled Redis speaks no TLS)" -}}
{{- end -}}
{{- if and $v.externalRedis.url (not (regexMatch "^rediss?://" $v.externalRedis.url)) -}}
{{- $messages = append $messages "externalRedis.url must start with redis:// or rediss://" -}}
{{- end -}}
{{- if and $v.redis.auth.password (not (regexMatch "^[A-Za-z0-9._~-]+$" $v.redis.auth.password)) -}}
{{- $messages = append $messages "redis.auth.password may hold only letters, digits and . _ ~ - (it is put into the Redis URL)" -}}
{{- end -}}

{{- /* Memory: soft budget < hard limit < container memory limit. */ -}}
{{- $limitQ := ((($v.crawler.resources | default dict).limits) | default dict).memory -}}
{{- $limit := include "hermit.crawlerMemoryLimitBytes" . -}}
{{- if and $limitQ (not $limit) -}}
{{- $messages = append $messages (printf "crawler.resources.limits.memory: can't read %q as a memory quantity (e.g. 1Gi, 512Mi, 1073741824)" (toString $limitQ)) -}}
{{- end -}}
{{- if $v.crawler.memoryBudget.enabled -}}
{{- if not $limitQ -}}
{{- $messages = append $messages "crawler.memoryBudget: needs crawler.resources.limits.memory (the budget must sit below the container memory limit); or set crawler.memoryBudget.enabled=false" -}}
{{- else if $limit -}}
{{- $soft := include "hermit.memoryBudgetBytes" . | int64 -}}
{{- $hard := include "hermit.memoryHardLimitBytes" . | int64 -}}
{{- if ge $soft $hard -}}
{{- $messages = append $messages (printf "crawler.memoryBudget: the soft budget (%d bytes) must be below the hard limit (%d bytes)" $soft $hard) -}}
{{- end -}}
{{- if ge $hard ($limit | int64) -}}
{{- $messages = append $messages (printf "crawler.memoryBudget: the hard limit (%d bytes) must be below the container memory limit crawler.resources.limits.memory (%s = %s bytes)" $hard (toString $limitQ) $limit) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* The grace period must cover the drain and the last scrape. */ -}}
{{- $grace := include "hermit.terminationGracePeriodSeconds" . | int64 -}}
{{- $stop := addf $v.crawler.drainTimeoutSeconds $v.crawler.metrics.finalScrapeTimeoutSeconds -}}
{{- if le (float64 $grace) $stop -}}
{{- $messages = append $messages (printf "crawler.terminationGracePeriodSeconds (%d) must be above crawler.drainTimeoutSeconds + crawler.metrics.finalScrapeTimeoutSeconds (%v), or workers are killed mid-drain" $grace $stop) -}}
{{- end -}}

{{- /* The operator needs a budget to recycle on. */ -}}
{{- if $v.operator.enabled -}}
{{- $opBudget := $v.operator.memoryBudgetBytes -}}
{{- if kindIs "invalid" $opBudget -}}{{- $opBudget = include "hermit.memoryBudgetBytes" . -}}{{- end -}}
{{- if not $opBudget -}}
{{- $messages = append $messages "operator.memoryBudgetBytes: the operator needs a budget: set it, or enable crawler.memoryBudget (the operator then uses 0.8 x the workers' soft budget), or set operator.enabled=false" -}}
{{- else if and $limit (ge ($opBudget | int64) ($limit | int64)) -}}
{{- $messages = append $messages (printf "operator.memoryBudgetBytes (%v) must be below the container memory limit crawler.resources.limits.memory (%s bytes): the OOM killer would act first" $opBudget $limit) -}}
{{- end -}}
{{- end -}}

{{- /* The operator's Role is bound to its ServiceAccount: never to the namespace's default one. */ -}}
{{- if and $v.operator.enabled (not $v.operator.serviceAccount.create) (not $v.operator.serviceAccount.name) -}}
{{- $messages = append $messages "operator.serviceAccount.name: set it to an existing ServiceAccount when operator.serviceAccount.create is false (the chart binds the operator's Role to it; bound to the namespace's default ServiceAccount, every pod there could evict pods)" -}}
{{- end -}}

{{- /* Autoscaling. */ -}}
{{- if and $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled -}}
{{- $messages = append $messages "autoscaling: enable autoscaling.keda or autoscaling.hpa, not both (they would fight over the replica count)" -}}
{{- end -}}
{{- if and $v.autoscaling.keda.enabled (gt (int $v.autoscaling.keda.minReplicas) (int $v.autoscaling.keda.maxReplicas)) -}}
{{- $messages = append $messages "autoscaling.keda.minReplicas must not exceed autoscaling.keda.maxReplicas" -}}
{{- end -}}
{{- if and $v.autoscaling.hpa.enabled (gt (int $v.autoscaling.hpa.minReplicas) (int $v.autoscaling.hpa.maxReplicas)) -}}
{{- $messages = append $messages "autoscaling.hpa.minReplicas must not exceed autoscaling.hpa.maxReplicas" -}}
{{- end -}}
{{- if hasKey $v.autoscaling.keda "redis" -}}
{{- $messages = append $messages "autoscaling.keda.redis: removed in chart 0.2.0 with the redis trigger (the per-priority queue lists it watched no longer exist: the frontier keeps one queue per host). Delete autoscaling.keda.redis from your values: KEDA scales on the prometheus trigger, which needs only autoscaling.keda.prometheus.serverAddress (the query defaults to the crawl's hermit_crawl_schedulable_requests, the threshold to 16 per worker)" -}}
{{- end -}}
{{- if and $v.autoscaling.keda.enabled (not $v.autoscaling.keda.prometheus.serverAddress) -}}
{{- $messages = append $messages "autoscaling.keda.prometheus.serverAddress: KEDA reads hermit_crawl_schedulable_requests from Prometheus: set the URL of a Prometheus that scrapes the workers (e.g. http://prometheus-operated.monitoring:9090; see metrics.serviceMonitor or metrics.podMonitor)" -}}
{{- end -}}

{{- /* Monitoring. */ -}}
{{- if and $v.metrics.serviceMonitor.enabled $v.metrics.podMonitor.enabled -}}
{{- $messages = append $messages "metrics: enable serviceMonitor or podMonitor, not both (every target would be scraped twice)" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.service.enabled) -}}
{{- $messages = append $messages "metrics.serviceMonitor needs metrics.service.enabled (or use metrics.podMonitor)" -}}
{{- end -}}
{{- if and $v.prometheusRule.enabled (not (.Files.Glob "files/monitoring/rules/*.yaml")) -}}
{{- $messages = append $messages "prometheusRule: the chart has no rules in files/monitoring/rules (run `make chart-monitoring` to copy them from monitoring/)" -}}
{{- end -}}
{{- if and $v.dashboards.enabled (not (.Files.Glob "files/monitoring/dashboards/*.json")) -}}
{{- $messages = append $messages "dashboards: the chart has no dashboards in files/monitoring/dashboards (run `make chart-monitoring` to copy them from monitoring/)" -}}
{{- end -}}

{{- /* Ports must not collide inside one pod. */ -}}
{{- if eq (int $v.crawler.metrics.port) (int $v.crawler.diagnostics.port) -}}
{{- $messages = append $messages "crawler.metrics.port and crawler.diagnostics.port must differ" -}}
{{- end -}}
{{- if eq (int $v.operator.metrics.port) (int $v.operator.health.port) -}}
{{- $messages = append $messages "operator.metrics.port and operator.health.port must differ" -}}
{{- end -}}

{{- /* Seeds go into a ConfigMap: 1 MiB at most. */ -}}
{{- if gt (len $v.seeds) 1000000 -}}
{{- $messages = append $messages "seeds: over 1 MB does not fit in a ConfigMap; push large seed lists with `hermit seed` instead" -}}
{{- end -}}

{{- if $messages -}}
{{- fail (printf "\n\nINVALID VALUES:\n  - %s\n" (join "\n  - " $messages)) -}}
{{- end -}}
{{- end -}}

{{/* Chart name, truncated to a DNS label. */}}
{{- define "agent-clusters.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, unless the release name already holds the chart name. */}}
{{- define "agent-clusters.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-clusters.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-clusters.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-clusters.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "agent-clusters.labels" -}}
helm.sh/chart: {{ include "agent-clusters.chart" . }}
{{ include "agent-clusters.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agent-clusters
{{- end }}

{{- define "agent-clusters.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agent-clusters.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agent-clusters.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Service the API server reaches the webhook through. */}}
{{- define "agent-clusters.webhookService" -}}
{{- printf "%s-webhook" (include "agent-clusters.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-clusters.webhookHost" -}}
{{- default (printf "%s.%s.svc" (include "agent-clusters.webhookService" .) .Release.Namespace) .Values.webhook.host }}
{{- end }}

{{- define "agent-clusters.webhookConfigurationName" -}}
{{- default (printf "%s.agentclusters.io" (include "agent-clusters.fullname" .)) .Values.webhook.configurationName }}
{{- end }}

{{/* Secret holding the webhook's serving certificate (every operator replica mounts the same one). */}}
{{- define "agent-clusters.webhookTLSSecret" -}}
{{- if .Values.webhook.existingSecret }}
{{- .Values.webhook.existingSecret }}
{{- else }}
{{- /* cert-manager's, or the one the chart generates (webhook-tls-secret.yaml): one serving
certificate for every operator replica, so they all match the one caBundle. */}}
{{- printf "%s-webhook-tls" (include "agent-clusters.fullname" .) }}
{{- end }}
{{- end }}

{{/* Secret the chart renders for URLs given as values. */}}
{{- define "agent-clusters.connectionsSecret" -}}
{{- printf "%s-connections" (include "agent-clusters.fullname" .) }}
{{- end }}

{{/* Secret holding the replica auth master key (agent_api/replica_auth.py). */}}
{{- define "agent-clusters.replicaAuthSecret" -}}
{{- default (printf "%s-replica-auth" (include "agent-clusters.fullname" .)) .Values.replicaAuth.existingSecret }}
{{- end }}

{{/* The env entry of the replica auth master key, for the operator and the gateway. */}}
{{- define "agent-clusters.replicaAuthEnv" -}}
- name: AGENTCLUSTERS_REPLICA_AUTH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "agent-clusters.replicaAuthSecret" . }}
      key: {{ .Values.replicaAuth.existingSecretKey }}
{{- end }}

{{/* secretKeyRef of DATABASE_URL / REDIS_URL, or nothing when unset. Argument: dict root, conf, key. */}}
{{- define "agent-clusters.urlSecretRef" -}}
{{- if .conf.existingSecret }}
name: {{ .conf.existingSecret }}
key: {{ .conf.existingSecretKey }}
{{- else if .conf.url }}
name: {{ include "agent-clusters.connectionsSecret" .root }}
key: {{ .key }}
{{- end }}
{{- end }}

{{- define "agent-clusters.certDir" -}}
/var/run/agentclusters/webhook
{{- end }}

{{/* The operator's settings file (agent_operator/settings.py, camelCase). URLs come from env. */}}
{{- define "agent-clusters.settings" -}}
image: {{ default (include "agent-clusters.image" .) .Values.agents.image | quote }}
runtimeCommand:
{{- toYaml .Values.agents.command | nindent 2 }}
runtimeSecretName: {{ .Values.agents.runtimeSecretName | quote }}
{{- with .Values.agents.runtimeDatabaseUrl }}
runtimeDatabaseUrl: {{ . | quote }}
{{- end }}
runtimeDatabasePooling: {{ .Values.agents.runtimeDatabasePooling | quote }}
credentialRotationDays: {{ .Values.agents.credentialRotationDays }}
runtimePort: {{ .Values.agents.port }}
terminationGracePeriodSeconds: {{ .Values.agents.terminationGracePeriodSeconds }}
resyncSeconds: {{ .Values.operator.resyncSeconds }}
workers: {{ .Values.operator.workers }}
leaderElection:
  enabled: true
  leaseName: {{ .Values.operator.leaderElection.leaseName | quote }}
  leaseNamespace: {{ .Release.Namespace | quote }}
  leaseDurationSeconds: {{ .Values.operator.leaderElection.leaseDurationSeconds }}
  renewDeadlineSeconds: {{ .Values.operator.leaderElection.renewDeadlineSeconds }}
  retryPeriodSeconds: {{ .Values.operator.leaderElection.retryPeriodSeconds }}
metricsPort: {{ .Values.metrics.operatorPort }}
tiers:
  defaultTier: {{ .Values.tiers.defaultTier | quote }}
  {{- with .Values.tiers.namespaceLabel }}
  namespaceLabel: {{ . | quote }}
  {{- end }}
  tiers:
    {{- range $name, $tier := .Values.tiers.tiers }}
    {{ $name | quote }}:
      slots: {{ int64 $tier.slots }}
      {{- if hasKey $tier "cpu" }}
      cpu: {{ toString $tier.cpu | quote }}
      {{- end }}
      {{- if hasKey $tier "memory" }}
      memory: {{ toString $tier.memory | quote }}
      {{- end }}
      {{- if hasKey $tier "minScheduleIntervalSeconds" }}
      minScheduleIntervalSeconds: {{ int64 $tier.minScheduleIntervalSeconds }}
      {{- end }}
      {{- if hasKey $tier "allowedImages" }}
      allowedImages: {{ toJson $tier.allowedImages }}
      {{- end }}
    {{- end }}
{{- if .Values.webhook.enabled }}
webhook:
  host: {{ include "agent-clusters.webhookHost" . | quote }}
  listen: "0.0.0.0"
  port: {{ .Values.webhook.port }}
  certDir: {{ include "agent-clusters.certDir" . | quote }}
  configurationName: {{ include "agent-clusters.webhookConfigurationName" . | quote }}
  secretReferenceCheckExempt: {{ include "agent-clusters.secretReferenceCheckExempt" . }}
{{- else }}
webhook: null
{{- end }}
{{- end }}

{{/* Users whose AgentCluster writes skip the webhook's check that they may get every Secret a
spec newly references, as JSON: the gateway's ServiceAccount (it checks its callers itself, then
writes as itself), plus webhook.secretReferenceCheckExempt. */}}
{{- define "agent-clusters.secretReferenceCheckExempt" -}}
{{- $users := list }}
{{- if .Values.gateway.enabled }}
{{- $users = append $users (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "agent-clusters.gatewayServiceAccountName" .)) }}
{{- end }}
{{- $users = concat $users .Values.webhook.secretReferenceCheckExempt }}
{{- if $users }}{{ toJson $users }}{{ else }}[]{{ end }}
{{- end }}

{{/* Checks the schema cannot express; rendered (as nothing) by configmap.yaml. */}}
{{- define "agent-clusters.validate" -}}
{{- if not (hasKey .Values.tiers.tiers .Values.tiers.defaultTier) }}
{{- fail (printf "tiers.defaultTier %q is not one of tiers.tiers (%s)" .Values.tiers.defaultTier (keys .Values.tiers.tiers | sortAlpha | join ", ")) }}
{{- end }}
{{- $election := .Values.operator.leaderElection }}
{{- if not (and (lt (float64 $election.retryPeriodSeconds) (float64 $election.renewDeadlineSeconds)) (lt (float64 $election.renewDeadlineSeconds) (float64 $election.leaseDurationSeconds))) }}
{{- fail (printf "operator.leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds (got %v, %v, %v): a leader must stop reconciling before another replica may take its Lease over" $election.retryPeriodSeconds $election.renewDeadlineSeconds $election.leaseDurationSeconds) }}
{{- end }}
{{- if and .Values.webhook.certManager.enabled .Values.webhook.existingSecret }}
{{- fail "webhook.certManager.enabled and webhook.existingSecret are exclusive: pick one source of the webhook certificate" }}
{{- end }}
{{- end }}

{{/* --- The MCP gateway (`agentclusters gateway`) --- */}}

{{- define "agent-clusters.gatewayName" -}}
{{- printf "%s-gateway" (include "agent-clusters.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-clusters.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-clusters.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "agent-clusters.gatewayLabels" -}}
helm.sh/chart: {{ include "agent-clusters.chart" . }}
{{ include "agent-clusters.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agent-clusters
{{- end }}

{{- define "agent-clusters.gatewayServiceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "agent-clusters.gatewayName" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The gateway's image: gateway.image.* where set, else the operator's image. */}}
{{- define "agent-clusters.gatewayImage" -}}
{{- $repository := default .Values.image.repository .Values.gateway.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.gateway.image.tag }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/* The URL clients reach the gateway at (without /mcp): gateway.publicUrl, else the Ingress
host, else the Service's in-cluster name. */}}
{{- define "agent-clusters.gatewayPublicUrl" -}}
{{- if .Values.gateway.publicUrl }}
{{- .Values.gateway.publicUrl | trimSuffix "/" }}
{{- else if and .Values.gateway.ingress.enabled .Values.gateway.ingress.host }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.gateway.ingress.tls))) .Values.gateway.ingress.host }}
{{- else }}
{{- printf "http://%s.%s.svc:%d" (include "agent-clusters.gatewayName" .) .Release.Namespace (int .Values.gateway.service.port) }}
{{- end }}
{{- end }}

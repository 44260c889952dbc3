{{- define "roomctl.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "roomctl.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "roomctl.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "roomctl.secretName" -}}
{{- if .Values.livekit.existingSecret -}}{{ .Values.livekit.existingSecret }}{{- else -}}{{ include "roomctl.fullname" . }}-livekit{{- end -}}
{{- end -}}

{{- define "roomctl.plugnmeetSecretName" -}}
{{- if .Values.plugnmeet.existingSecret -}}{{ .Values.plugnmeet.existingSecret }}{{- else -}}{{ include "roomctl.fullname" . }}-plugnmeet{{- end -}}
{{- end -}}

{{/* The rules, shared by the ClusterRole and the per-namespace Roles: exactly what the operator calls. */}}
{{- define "roomctl.rules" -}}
- apiGroups: ["roomctl.dev"]
  resources: ["rooms", "plugnmeetrooms", "roompolicies"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["roomctl.dev"]
  resources: ["rooms/status", "plugnmeetrooms/status", "roompolicies/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- with .Values.serverRefSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ toJson . }}
  verbs: ["get"]
{{- end }}
{{- end -}}

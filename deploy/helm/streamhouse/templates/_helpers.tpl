{{- define "streamhouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamhouse.headless" -}}
{{- printf "%s-agents" (include "streamhouse.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamhouse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamhouse.labels" -}}
{{ include "streamhouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding DATABASE_URL. */}}
{{- define "streamhouse.dbSecret" -}}
{{- if .Values.postgres.existingSecret -}}{{ .Values.postgres.existingSecret }}{{- else -}}{{ include "streamhouse.fullname" . }}{{- end -}}
{{- end -}}

{{/* The Secret holding the S3 keys, "" when none (AWS credential chain). */}}
{{- define "streamhouse.s3Secret" -}}
{{- if .Values.s3.existingSecret -}}{{ .Values.s3.existingSecret }}{{- else if and .Values.secrets.create .Values.secrets.awsAccessKeyId -}}{{ include "streamhouse.fullname" . }}{{- end -}}
{{- end -}}

{{/* Name of the release's objects. */}}
{{- define "ums.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the release's pods. */}}
{{- define "ums.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "ums.labels" -}}
{{ include "ums.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Name of the Secret holding the UMS_ credentials. */}}
{{- define "ums.secretName" -}}
{{- .Values.existingSecret | default (include "ums.fullname" .) -}}
{{- end -}}

{{/* The configuration file: .Values.config, the listen addresses of the
service ports (off for a disabled one), the data directory on the
persistent volume, and the gateways list. */}}
{{- define "ums.configFile" -}}
{{- $cfg := omit .Values.config "data-dir" "config" "check-config" -}}
{{- range $name, $p := .Values.service.ports -}}
{{- $cfg = omit $cfg $p.setting -}}
{{- if and $p.enabled $p.port -}}
{{- $_ := set $cfg $p.setting (printf ":%v" $p.port) -}}
{{- else -}}
{{- $_ := set $cfg $p.setting "off" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "data-dir" "/var/lib/ums" -}}
{{- if .Values.gateways -}}
{{- $_ := set $cfg "gateways" .Values.gateways -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

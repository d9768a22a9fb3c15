{{/* The objects' name: the release's, or the release's with the chart's when it lacks it. */}}
{{- define "k8s-exporter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What selects the exporter's pods. */}}
{{- define "k8s-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "k8s-exporter.labels" -}}
{{ include "k8s-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The headless Service that names each shard. */}}
{{- define "k8s-exporter.shardsService" -}}
{{- printf "%s-shards" (include "k8s-exporter.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Where the web config file is mounted. */}}
{{- define "k8s-exporter.webConfigDir" -}}/etc/k8s-exporter{{- end -}}

{{/* The pod, the same for the single replica and for every shard. */}}
{{- define "k8s-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "k8s-exporter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: k8s-exporter
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --web.listen-address=:9201
        {{- if .Values.webConfig }}
        - --web.config.file={{ include "k8s-exporter.webConfigDir" . }}/web.config.file
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . }}
        {{- end }}
      ports:
        - name: http
          containerPort: 9201
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
          scheme: {{ .Values.probeScheme }}
        periodSeconds: 10
        timeoutSeconds: 2
      readinessProbe:
        httpGet:
          path: /healthz
          port: http
          scheme: {{ .Values.probeScheme }}
        periodSeconds: 5
        timeoutSeconds: 2
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- if .Values.webConfig }}
      volumeMounts:
        - name: web-config
          mountPath: {{ include "k8s-exporter.webConfigDir" . }}
          readOnly: true
      {{- end }}
  {{- if .Values.webConfig }}
  volumes:
    - name: web-config
      secret:
        secretName: {{ .Values.webConfig }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

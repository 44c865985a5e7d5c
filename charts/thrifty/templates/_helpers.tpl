{{/*
Names, labels and image references shared by every template.
*/}}

{{- define "thrifty.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name. Kept to 40 characters so that suffixes such as "-router"
stay within the 63 characters of a label value.
*/}}
{{- define "thrifty.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "thrifty.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Labels of every object the chart renders. No app.kubernetes.io/managed-by: the same objects are
also shipped as plain manifests (manifests/), where "Helm" would be untrue, and "thrifty" marks
the children the operator itself creates.
*/}}
{{- define "thrifty.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/part-of: thrifty
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "thrifty.selectorLabels" . }}
{{- end -}}

{{/* The operator pod's selector: never changes across upgrades. */}}
{{- define "thrifty.selectorLabels" -}}
app.kubernetes.io/name: {{ include "thrifty.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "thrifty.operatorSelectorLabels" -}}
{{ include "thrifty.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "thrifty.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "thrifty.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The ClusterRole that the operator binds to each router's ServiceAccount. */}}
{{- define "thrifty.routerClusterRoleName" -}}
{{- printf "%s-router" (include "thrifty.fullname" .) -}}
{{- end -}}

{{/* repository[:tag]@digest: pulled by digest, the tag only informs. */}}
{{- define "thrifty.image" -}}
{{- $image := .Values.image -}}
{{- if $image.tag -}}
{{- printf "%s:%s@%s" $image.repository $image.tag $image.digest -}}
{{- else -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- end -}}
{{- end -}}

{{- define "thrifty.routerImage" -}}
{{- $router := .Values.router.image -}}
{{- if or $router.repository $router.digest -}}
{{- printf "%s@%s" (default .Values.image.repository $router.repository) (default .Values.image.digest $router.digest) -}}
{{- else -}}
{{- include "thrifty.image" . -}}
{{- end -}}
{{- end -}}

{{/*
The restricted Pod Security Standard, shared by the operator and the test pod: non-root with a
fixed UID (the image may not declare a numeric user), the runtime's default seccomp profile.
*/}}
{{- define "thrifty.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "thrifty.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Chart name, truncated to a DNS label. */}}
{{- define "vr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name. */}}
{{- define "vr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's objects (Deployment, Service, ClusterRole, Lease...). */}}
{{- define "vr.operator" -}}
{{- printf "%s-operator" (include "vr.fullname" .) -}}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "vr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vr.operator" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods (stable across upgrades). */}}
{{- define "vr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of the operator's own objects (Deployment, Service, RBAC, ...). */}}
{{- define "vr.labels" -}}
{{ include "vr.selectorLabels" . }}
{{ include "vr.commonLabels" . }}
{{- end -}}

{{/* Labels of the release's other objects: `component` says which part they are
(dict "root" $ "component" "monitoring"). */}}
{{- define "vr.componentLabels" -}}
app.kubernetes.io/name: {{ include "vr.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{ include "vr.commonLabels" .root }}
{{- end -}}

{{/* Labels every object of the release carries. */}}
{{- define "vr.commonLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: video-resizer
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Image reference: [imageRegistry/]repository:tag, the tag defaulting to the appVersion. */}}
{{- define "vr.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- $repo := .image.repository -}}
{{- with .root.Values.imageRegistry }}{{ $repo = printf "%s/%s" . $repo }}{{ end -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* Name of the leader-election Lease. */}}
{{- define "vr.leaseName" -}}
{{- include "vr.operator" . -}}
{{- end -}}

{{/* Fails the render when an optional monitoring object needs an API the cluster lacks.
Checked only against a cluster (install, upgrade): `helm template` and `helm lint` have none
(lookup answers nothing there), so CI renders the monitoring objects without --api-versions. */}}
{{- define "vr.requireApi" -}}
{{- $cluster := lookup "v1" "Namespace" "" "kube-system" -}}
{{- if and $cluster (not (.root.Capabilities.APIVersions.Has .api)) -}}
{{- fail (printf "%s is true, but the cluster does not serve %s (install the Prometheus Operator's CRDs, or set it to false)" .value .api) -}}
{{- end -}}
{{- end -}}

{{/* Labels every object of a piece carries. */}}
{{- define "kubeparts.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kubeparts
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{/* The selector of a piece's pods: stable across upgrades. */}}
{{- define "kubeparts.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* registry/repository:tag of a piece: (dict "root" $ "piece" .Values.x) */}}
{{- define "kubeparts.image" -}}
{{- $tag := .piece.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{ printf "%s/%s:%s" .root.Values.image.registry .piece.image.repository $tag }}
{{- else -}}
{{ printf "%s:%s" .piece.image.repository $tag }}
{{- end -}}
{{- end }}

{{/* Placement of a control-plane piece: its own settings, else controlPlane's. */}}
{{- define "kubeparts.controlPlanePlacement" -}}
{{- with (.piece.nodeSelector | default .root.Values.controlPlane.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.piece.tolerations | default .root.Values.controlPlane.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .piece.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod and container security of the pieces that need no root. */}}
{{- define "kubeparts.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end }}
{{- define "kubeparts.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end }}

{{/* A PodDisruptionBudget for a piece with replicas: (dict "root" $ "name" n "piece" p) */}}
{{- define "kubeparts.pdb" -}}
{{- if and .piece.podDisruptionBudget.enabled (gt (int .piece.replicas) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kubeparts.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .piece.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "kubeparts.selector" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of a piece. */}}
{{- define "kubeparts.serviceAccount" -}}
{{- if .root.Values.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kubeparts.labels" . | nindent 4 }}
  {{- with .root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* A ClusterRoleBinding of a piece's ServiceAccount: (dict "root" $ "name" piece "binding" b "role" r) */}}
{{- define "kubeparts.clusterRoleBinding" }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .binding }}
  labels:
    {{- include "kubeparts.labels" . | nindent 4 }}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {{ .role | quote }}}
subjects:
- {kind: ServiceAccount, name: {{ .name }}, namespace: {{ .root.Release.Namespace }}}
{{- end }}

{{- define "kubeparts.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

"""Names fixed by the AgentCluster API: group, version, kind, labels, conditions, events.

They live in one module so that the CRD, the operator, the runtime and the gateway
spell them the same way; a typo in a label key would otherwise silently split the
system in two.
"""

from __future__ import annotations

from typing import Final

# --- API identity -------------------------------------------------------------------
GROUP: Final = "agentclusters.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "AgentCluster"
LIST_KIND: Final = "AgentClusterList"
PLURAL: Final = "agentclusters"
SINGULAR: Final = "agentcluster"
SHORT_NAMES: Final = ("agc",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# --- Pod labels ---------------------------------------------------------------------
# Every replica pod carries all three; `LABEL_CLUSTER` alone is the scale selector.
LABEL_CLUSTER: Final = f"{GROUP}/cluster"
LABEL_REPLICA: Final = f"{GROUP}/replica"
LABEL_ORDINAL: Final = f"{GROUP}/ordinal"

# Namespace label that picks the namespace's tier (see `agent_api.tiers`).
LABEL_TIER: Final = f"{GROUP}/tier"

# --- Annotations --------------------------------------------------------------------
# On a pod: the spec generation the pod was built from (image and resource changes roll
# pods whose generation is stale).
ANNOTATION_SPEC_GENERATION: Final = f"{GROUP}/spec-generation"
# On a pod: hash of the pod-shaping part of the spec (image, resources), so a rollout only
# happens when something that needs a restart changed.
ANNOTATION_POD_TEMPLATE_HASH: Final = f"{GROUP}/pod-template-hash"

# On the runtime Secret of a namespace (credentials): set it to any new value to have the
# operator issue new credentials (`kubectl annotate secret agentclusters-runtime
# agentclusters.io/rotate-credentials=$(date +%s) --overwrite`).
ANNOTATION_ROTATE_CREDENTIALS: Final = f"{GROUP}/rotate-credentials"
# Written by the operator on the runtime Secret: the rotate-credentials value it last acted on,
# when it last issued credentials (RFC 3339), and an opaque version that changes whenever the
# Secret's credentials change (it goes into the pod template hash, so pods roll; the hash never
# carries the credentials themselves).
ANNOTATION_CREDENTIALS_ROTATED_FOR: Final = f"{GROUP}/credentials-rotated-for"
ANNOTATION_CREDENTIALS_ROTATED_AT: Final = f"{GROUP}/credentials-rotated-at"
ANNOTATION_CREDENTIALS_VERSION: Final = f"{GROUP}/credentials-version"

# Finalizer the operator puts on an AgentCluster so that `statePolicy.whenDeleted` is
# applied before the object goes away. With the operator down, removing it by hand
# (`kubectl patch --type=json`) lets the deletion finish and leaves the state retained.
FINALIZER: Final = f"{GROUP}/state-policy"

# --- Conditions (status.conditions[].type) -----------------------------------------
CONDITION_READY: Final = "Ready"
CONDITION_PROGRESSING: Final = "Progressing"
CONDITION_DEGRADED: Final = "Degraded"
CONDITION_QUOTA_EXCEEDED: Final = "QuotaExceeded"
CONDITION_TYPES: Final = (
    CONDITION_READY,
    CONDITION_PROGRESSING,
    CONDITION_DEGRADED,
    CONDITION_QUOTA_EXCEEDED,
)

# --- Event reasons ------------------------------------------------------------------
EVENT_SCALED_UP: Final = "ScaledUp"
EVENT_SCALED_DOWN: Final = "ScaledDown"
EVENT_REPLICA_RECREATED: Final = "ReplicaRecreated"
EVENT_QUOTA_EXCEEDED: Final = "QuotaExceeded"
EVENT_CREDENTIALS_ROTATED: Final = "CredentialsRotated"
EVENT_CREDENTIALS_REFUSED: Final = "CredentialsRefused"
# The API server refused a replica pod (also the reason of the Degraded condition).
EVENT_POD_CREATE_REFUSED: Final = "PodCreateRefused"
EVENT_REASONS: Final = (
    EVENT_SCALED_UP,
    EVENT_SCALED_DOWN,
    EVENT_REPLICA_RECREATED,
    EVENT_QUOTA_EXCEEDED,
    EVENT_CREDENTIALS_ROTATED,
    EVENT_CREDENTIALS_REFUSED,
    EVENT_POD_CREATE_REFUSED,
)

# --- Sizes --------------------------------------------------------------------------
MIN_REPLICAS: Final = 0
MAX_REPLICAS: Final = 100
# A pod is named `<cluster>-<replica>` and must fit a DNS label (63 characters), which is
# also the limit on its hostname and on the label values that carry the names.
DNS_LABEL_MAX: Final = 63
# Longest replica name `agent_api.names` can produce: two words of at most 9 letters, a
# dash, and a pass suffix of at most 2 digits ("daring-duck", ..., "daring-duck99").
MAX_REPLICA_NAME_LENGTH: Final = 21
MAX_CLUSTER_NAME_LENGTH: Final = DNS_LABEL_MAX - 1 - MAX_REPLICA_NAME_LENGTH  # 41

# --- Operator configuration ---------------------------------------------------------
ENV_TIERS: Final = "AGENTCLUSTERS_TIERS"  # inline YAML or JSON
ENV_TIERS_FILE: Final = "AGENTCLUSTERS_TIERS_FILE"  # path to a YAML or JSON file

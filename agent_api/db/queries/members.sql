-- name: RegisterMember
-- Idempotent; never un-archives a member (names are never reused).
INSERT INTO cluster_members (namespace, cluster, replica, ordinal)
VALUES ($1, $2, $3, $4)
ON CONFLICT (namespace, cluster, replica) DO NOTHING;

-- name: ArchiveMember
UPDATE cluster_members SET archived_at = coalesce(archived_at, now())
WHERE namespace = $1 AND cluster = $2 AND replica = $3;

-- name: MemberArchived
-- FOR SHARE: a state write holding this lock finishes before ArchiveMember's UPDATE can
-- commit, so no write lands after the member was archived.
SELECT archived_at IS NOT NULL AS archived
FROM cluster_members WHERE namespace = $1 AND cluster = $2 AND replica = $3
FOR SHARE;

-- name: ReleaseMemberLeases
-- Single-mode fires the archived replica still holds go back to 'available' for the others.
-- Row locks serialise this with a concurrent renewal or completion by the same replica; if
-- the replica completes first, the row is no longer 'running' and is left alone.
UPDATE fires
SET status = 'available', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
    attempt = greatest(attempt - 1, 0), started_at = NULL
WHERE namespace = $1 AND cluster = $2 AND replica = '' AND lease_owner = $3
  AND status = 'running';

-- name: CancelMemberFires
-- Cluster-mode fires belong to one replica; an archived replica will never run them.
UPDATE fires SET status = 'cancelled', finished_at = now(), error = 'replica archived'
WHERE namespace = $1 AND cluster = $2 AND replica = $3
  AND status IN ('available', 'running');

-- name: CloseMemberRuns
UPDATE runs SET status = 'released', finished_at = now(), error = 'replica archived'
WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND status = 'running';

-- name: DeleteClusterRuns
DELETE FROM runs WHERE namespace = $1 AND cluster = $2;

-- name: DeleteClusterFires
DELETE FROM fires WHERE namespace = $1 AND cluster = $2;

-- name: DeleteClusterLanes
DELETE FROM schedule_lanes WHERE namespace = $1 AND cluster = $2;

-- name: DeleteClusterState
DELETE FROM agent_state WHERE namespace = $1 AND cluster = $2;

-- name: RetireClusterMembers
-- statePolicy Delete: the members' rows go, their names and ordinals stay taken in
-- retired_replica_names (names are never reused; ordinals keep increasing). One statement, so
-- no allocation can read the namespace's names between the delete and the insert.
WITH gone AS (
    DELETE FROM cluster_members WHERE namespace = $1 AND cluster = $2
    RETURNING namespace, cluster, replica, ordinal
)
INSERT INTO retired_replica_names (namespace, cluster, replica, ordinal)
SELECT namespace, cluster, replica, ordinal FROM gone
ON CONFLICT (namespace, cluster, replica) DO NOTHING;

-- name: DeleteClusterConfig
DELETE FROM cluster_configs WHERE namespace = $1 AND cluster = $2;

-- name: NamespaceReplicaNames
-- Every replica name the namespace ever had: live, archived, and retired by a statePolicy
-- Delete (reported as archived: taken for good). This, not the AgentCluster statuses (which
-- keep only the newest archived members), is what the operator's allocation must avoid.
-- Every name is registered here before any status names it (RegisterMember runs before the
-- status write), under the operator's per-namespace lock. (Primary-key prefix scans.)
SELECT cluster, replica, archived_at IS NOT NULL AS archived
FROM cluster_members WHERE namespace = $1
UNION ALL
SELECT cluster, replica, true AS archived
FROM retired_replica_names WHERE namespace = $1;

-- name: ClusterLastOrdinal
-- The highest ordinal a cluster of this name in this namespace ever gave to a member that has
-- since been archived or retired (-1: none). A cluster recreated under the same name starts
-- after it, so ordinals keep increasing across incarnations. Unarchived rows are left out:
-- those not in status are an allocation whose status write did not land, and it is redone
-- with the same ordinals.
SELECT greatest(
    (SELECT max(ordinal) FROM cluster_members
     WHERE namespace = $1 AND cluster = $2 AND archived_at IS NOT NULL),
    (SELECT max(ordinal) FROM retired_replica_names WHERE namespace = $1 AND cluster = $2),
    -1
);

-- name: NewestArchivedMembers
-- The newest $3 archived members of a cluster and how many it has archived in all: what the
-- AgentCluster's status keeps (status.archived, status.archivedCount). Newest by ordinal,
-- which keeps increasing (ClusterLastOrdinal); cluster_members_archived_idx serves it.
SELECT replica, ordinal, archived_at,
       (SELECT count(*) FROM cluster_members
        WHERE namespace = $1 AND cluster = $2 AND archived_at IS NOT NULL) AS total
FROM cluster_members
WHERE namespace = $1 AND cluster = $2 AND archived_at IS NOT NULL
ORDER BY ordinal DESC, replica DESC
LIMIT $3;

-- name: ArchivedMembersPage
-- One page of a cluster's archived members, newest first, after the keyset cursor
-- ($3 ordinal, $4 replica; NULL: from the newest). A keyset, not an OFFSET: members archived
-- while a caller pages through shift no row into a page already read.
SELECT replica, ordinal, registered_at, archived_at
FROM cluster_members
WHERE namespace = $1 AND cluster = $2 AND archived_at IS NOT NULL
  AND ($3::integer IS NULL OR (ordinal, replica) < ($3::integer, $4::text))
ORDER BY ordinal DESC, replica DESC
LIMIT $5;

-- name: ArchivedMembersCount
SELECT count(*) FROM cluster_members
WHERE namespace = $1 AND cluster = $2 AND archived_at IS NOT NULL;

-- name: ClustersWithLiveMembers
-- Clusters that still have unarchived members: the operator archives those whose
-- AgentCluster no longer exists (deleted while the operator was down).
SELECT DISTINCT namespace, cluster FROM cluster_members WHERE archived_at IS NULL;

-- name: LiveMemberNames
SELECT replica FROM cluster_members
WHERE namespace = $1 AND cluster = $2 AND archived_at IS NULL;

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

-- name: DeleteClusterMembers
DELETE FROM cluster_members WHERE namespace = $1 AND cluster = $2;

-- name: DeleteClusterConfig
DELETE FROM cluster_configs WHERE namespace = $1 AND cluster = $2;

-- name: NamespaceReplicaNames
-- Every replica name registered in the namespace, archived ones included. A cluster deleted
-- with statePolicy Retain leaves its members only here, and names are never reused, so the
-- operator adds these to the names it sees in AgentCluster statuses. (Primary-key prefix scan.)
SELECT cluster, replica, archived_at IS NOT NULL AS archived
FROM cluster_members WHERE namespace = $1;

-- name: ClustersWithLiveMembers
-- Clusters that still have unarchived members: the operator archives those whose
-- AgentCluster no longer exists (deleted while the operator was down).
SELECT DISTINCT namespace, cluster FROM cluster_members WHERE archived_at IS NULL;

-- name: LiveMemberNames
SELECT replica FROM cluster_members
WHERE namespace = $1 AND cluster = $2 AND archived_at IS NULL;

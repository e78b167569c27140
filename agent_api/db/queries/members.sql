-- name: RegisterMember
-- Idempotent; never un-archives a member (names are never reused).
INSERT INTO cluster_members (namespace, cluster, replica, ordinal)
VALUES ($1, $2, $3, $4)
ON CONFLICT (namespace, cluster, replica) DO NOTHING;

-- name: LockReplicaNames
-- Serialises the operator's registrations of new names (RegisterMembers) for the rest of the
-- transaction, across namespaces and operators (a stale leader and a new one): the batch that
-- comes second reads, with a fresh snapshot after this wait, every name the first committed.
-- A table lock rather than an advisory lock: tenants have no privilege on this table, so no
-- tenant can take or hold it (an advisory lock any role can hold; see 0004). It conflicts only
-- with itself and with RetireClusterMembers' insert, never with reads; it is held for one
-- INSERT of a few rows.
LOCK TABLE retired_replica_names IN SHARE ROW EXCLUSIVE MODE;

-- name: RegisterMembers
-- A scale-up's new names ($3) and ordinals ($4), in one statement: one round trip for 50
-- members, not 50. All or nothing: if any name is already taken in the namespace (by another
-- cluster, live or archived; retired by a statePolicy Delete; or archived in this very cluster)
-- nothing is inserted and the taken names are returned, so the caller refuses the allocation
-- and a later pass allocates around them. This cluster's own unarchived rows are not a clash:
-- they are an allocation whose status write did not land, redone with the same names
-- (ON CONFLICT: idempotent, never un-archives). Run after LockReplicaNames in the same
-- transaction, so two concurrent batches of one namespace never both register one name.
WITH new (replica, ordinal) AS (
    SELECT * FROM unnest($3::text[], $4::integer[])
), taken AS (
    SELECT n.replica FROM new n
    WHERE EXISTS (SELECT FROM cluster_members m
                  WHERE m.namespace = $1 AND m.replica = n.replica
                    AND (m.cluster <> $2 OR m.archived_at IS NOT NULL))
       OR EXISTS (SELECT FROM retired_replica_names r
                  WHERE r.namespace = $1 AND r.replica = n.replica)
), registered AS (
    INSERT INTO cluster_members (namespace, cluster, replica, ordinal)
    SELECT $1, $2, replica, ordinal FROM new
    WHERE NOT EXISTS (SELECT FROM taken)
    ON CONFLICT (namespace, cluster, replica) DO NOTHING
)
SELECT replica FROM taken ORDER BY replica;

-- name: ArchiveMembers
-- Every listed replica ($3) of the cluster in one statement; rows locked in name order, so two
-- archivers of overlapping sets (a stale leader and a new one) wait for each other instead of
-- deadlocking. Idempotent: an archived member keeps its first archived_at.
WITH locked AS (
    SELECT replica FROM cluster_members
    WHERE namespace = $1 AND cluster = $2 AND replica = ANY($3::text[])
    ORDER BY replica
    FOR UPDATE
)
UPDATE cluster_members m SET archived_at = coalesce(m.archived_at, now())
FROM locked
WHERE m.namespace = $1 AND m.cluster = $2 AND m.replica = locked.replica;

-- name: MemberArchived
-- FOR SHARE: a state write holding this lock finishes before ArchiveMembers' UPDATE can
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
WHERE namespace = $1 AND cluster = $2 AND replica = '' AND lease_owner = ANY($3::text[])
  AND status = 'running';

-- name: CancelMemberFires
-- Cluster-mode fires belong to one replica; an archived replica will never run them.
UPDATE fires SET status = 'cancelled', finished_at = now(), error = 'replica archived'
WHERE namespace = $1 AND cluster = $2 AND replica = ANY($3::text[])
  AND status IN ('available', 'running');

-- name: CloseMemberRuns
UPDATE runs SET status = 'released', finished_at = now(), error = 'replica archived'
WHERE namespace = $1 AND cluster = $2 AND replica = ANY($3::text[]) AND status = 'running';

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

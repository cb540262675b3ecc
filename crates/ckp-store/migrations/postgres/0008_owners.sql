-- Fast failover: a process that claims jobs holds a session-level advisory lock on a key derived from its owner id
-- (the prefix of its workers' ids, `{owner}-{n}`) for its whole life, and is listed here while it does. PostgreSQL
-- releases the lock as soon as the process's session ends (a kill -9 included), so a listed owner whose lock is
-- gone has died: the leader returns its running jobs to the queue at once instead of at lease expiry. Owners not
-- listed here (a process that never took the lock) keep the lease as their only protection.
CREATE TABLE ckp_owners (
    owner text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
);

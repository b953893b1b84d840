-- Seata server tables for `store.mode: db` on PostgreSQL.
-- The same tables, columns, types, indexes and seed rows as Seata's script/server/db/postgresql.sql,
-- so that this server and Java seata-server nodes can share one database.
-- Table names are the defaults of seata.store.db.*-table.

CREATE TABLE IF NOT EXISTS global_table
(
    xid                       VARCHAR(128) NOT NULL,
    transaction_id            BIGINT,
    status                    SMALLINT     NOT NULL,
    application_id            VARCHAR(32),
    transaction_service_group VARCHAR(32),
    transaction_name          VARCHAR(128),
    timeout                   INT,
    begin_time                BIGINT,
    application_data          VARCHAR(2000),
    gmt_create                TIMESTAMP(0),
    gmt_modified              TIMESTAMP(0),
    CONSTRAINT pk_global_table PRIMARY KEY (xid)
);
CREATE INDEX IF NOT EXISTS idx_global_table_status_gmt_modified ON global_table (status, gmt_modified);
CREATE INDEX IF NOT EXISTS idx_global_table_transaction_id ON global_table (transaction_id);

CREATE TABLE IF NOT EXISTS branch_table
(
    branch_id         BIGINT       NOT NULL,
    xid               VARCHAR(128) NOT NULL,
    transaction_id    BIGINT,
    resource_group_id VARCHAR(32),
    resource_id       VARCHAR(256),
    branch_type       VARCHAR(8),
    status            SMALLINT,
    client_id         VARCHAR(64),
    application_data  VARCHAR(2000),
    gmt_create        TIMESTAMP(6),
    gmt_modified      TIMESTAMP(6),
    CONSTRAINT pk_branch_table PRIMARY KEY (branch_id)
);
CREATE INDEX IF NOT EXISTS idx_branch_table_xid ON branch_table (xid);

CREATE TABLE IF NOT EXISTS lock_table
(
    row_key        VARCHAR(128) NOT NULL,
    xid            VARCHAR(128),
    transaction_id BIGINT,
    branch_id      BIGINT       NOT NULL,
    resource_id    VARCHAR(256),
    table_name     VARCHAR(32),
    pk             VARCHAR(36),
    status         SMALLINT     NOT NULL DEFAULT 0,
    gmt_create     TIMESTAMP(0),
    gmt_modified   TIMESTAMP(0),
    CONSTRAINT pk_lock_table PRIMARY KEY (row_key)
);
COMMENT ON COLUMN lock_table.status IS '0:locked ,1:rollbacking';
CREATE INDEX IF NOT EXISTS idx_lock_table_branch_id ON lock_table (branch_id);
CREATE INDEX IF NOT EXISTS idx_lock_table_xid ON lock_table (xid);
CREATE INDEX IF NOT EXISTS idx_lock_table_status ON lock_table (status);

CREATE TABLE IF NOT EXISTS distributed_lock
(
    lock_key   VARCHAR(20) NOT NULL,
    lock_value VARCHAR(20) NOT NULL,
    expire     BIGINT      NOT NULL,
    CONSTRAINT pk_distributed_lock_table PRIMARY KEY (lock_key)
);
INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES ('AsyncCommitting', ' ', 0) ON CONFLICT DO NOTHING;
INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES ('RetryCommitting', ' ', 0) ON CONFLICT DO NOTHING;
INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES ('RetryRollbacking', ' ', 0) ON CONFLICT DO NOTHING;
INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES ('TxTimeoutCheck', ' ', 0) ON CONFLICT DO NOTHING;

/*
 * migrate.h - applies the numbered SQL files of migrations/ to PostgreSQL.
 *
 * Migrations are embedded in the binaries (common/embedded.h). Each file
 * "NNNN_name.sql" is applied once, in version order, inside its own
 * transaction together with its row in baton.schema_migrations (version,
 * name, md5 checksum, time), so a failing file leaves nothing behind. A
 * session-level advisory lock serialises concurrent migrators: services
 * starting together all succeed and exactly one applies each file. An
 * applied file whose text has changed since is refused: migrations are
 * append-only; fixes go in a new file.
 */
#ifndef BATON_MIGRATE_H
#define BATON_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "embedded.h"
#include "error.h"

/* pg_advisory_lock key held while migrating: "baton" in ASCII. */
#define BATON_MIGRATE_LOCK_KEY 0x6261746f6eLL

/* The migrations compiled into this binary, sorted by name. */
extern const struct baton_embedded_file baton_migrations[];
extern const size_t baton_migrations_count;

struct baton_migrate_result {
    int applied; /* files applied by this run */
    int already; /* files found applied before this run */
    int latest;  /* highest version now applied */
};

/*
 * Applies the pending files of `files` (`count` entries, sorted by name) over
 * `conn`. Returns BATON_OK and fills *result (may be NULL); BATON_ERR_INVALID
 * for a badly named file, BATON_ERR_STATE for an applied file whose checksum
 * changed, BATON_ERR_PG when a statement fails (the failing file is named in
 * errstr and rolled back; files before it stay applied).
 */
baton_err_t baton_migrate(PGconn *conn, const struct baton_embedded_file *files, size_t count,
                          struct baton_migrate_result *result, char *errstr, size_t errstr_size);

#endif

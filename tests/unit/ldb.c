/*
 * The request log store's retention (ldb_retain_step): rows older than logs.retention_days
 * go, then the oldest while the live pages exceed logs.max_bytes; each step is bounded (5,000
 * rows) so the writer keeps draining between steps. Real SQLite files in a temp directory.
 */
#include <criterion/criterion.h>
#include "../../bifrost.c"

static sqlite3 *open_store(char *dir, char *path, size_t cap)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, cap, "%s/logs.db", dir);
	char err[512];
	sqlite3 *db = ldb_open(path, true, err, sizeof(err));
	cr_assert_not_null(db, "%s", err);
	return db;
}

/* n rows, ts from t0 one ms apart, each with a `pad`-byte user agent. */
static void fill(sqlite3 *db, int64_t t0, int n, size_t pad)
{
	sqlite3_stmt *ins;
	cr_assert_eq(sqlite3_prepare_v2(db, ldb_insert_sql, -1, &ins, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	static struct ldb_rec r;
	memset(&r, 0, sizeof(r));
	memset(r.ua, 'u', MIN(pad, sizeof(r.ua) - 1));
	cr_assert_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < n; i++) {
		r.ts_ms = t0 + i;
		r.status = 200;
		r.latency_us = 1000;
		r.ttfb_us = r.cost_micros = -1;
		cr_assert_eq(ldb_insert(ins, &r), 0);
	}
	cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_finalize(ins);
}

static int64_t rows(sqlite3 *db, const char *where)
{
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM logs %s", where);
	return ldb_pragma(db, sql);
}

Test(ldb_retain, age_in_bounded_steps)
{
	char dir[] = "/tmp/bifrost-ldb-XXXXXX", path[256];
	sqlite3 *db = open_store(dir, path, sizeof(path));
	int64_t day = 86400000, now = 100 * day;
	fill(db, now - 3 * day, 12000, 8); /* 12,000 rows three days old */
	fill(db, now - 1000, 500, 8);      /* 500 fresh */
	atomic_store(&ldb_keep_ms, 2 * day);
	atomic_store(&ldb_keep_bytes, INT64_MAX);
	cr_assert(ldb_retain_step(db, now), "more to do after the first step");
	cr_assert_eq(rows(db, ""), 12500 - 5000, "one step deletes at most 5,000 rows");
	int steps = 1;
	while (ldb_retain_step(db, now) && steps < 10)
		steps++;
	cr_assert_eq(rows(db, ""), 500, "only the fresh rows stay");
	cr_assert_eq(rows(db, "WHERE ts < 98 * 86400000"), 0);
	cr_assert_not(ldb_retain_step(db, now), "nothing left to do");
	sqlite3_close(db);
	unlink(path);
	rmdir(dir);
}

Test(ldb_retain, size_keeps_the_newest)
{
	char dir[] = "/tmp/bifrost-ldb-XXXXXX", path[256];
	sqlite3 *db = open_store(dir, path, sizeof(path));
	int64_t now = 100 * 86400000LL;
	fill(db, now - 20000, 20000, 120); /* ~20,000 rows of ~200 bytes with indexes: a few MB */
	int64_t psize = ldb_pragma(db, "PRAGMA page_size");
	int64_t before = (ldb_pragma(db, "PRAGMA page_count") - ldb_pragma(db, "PRAGMA freelist_count")) * psize;
	atomic_store(&ldb_keep_ms, 30 * 86400000LL);
	atomic_store(&ldb_keep_bytes, before / 4);
	for (int steps = 0; ldb_retain_step(db, now) && steps < 50; steps++)
		;
	int64_t after = (ldb_pragma(db, "PRAGMA page_count") - ldb_pragma(db, "PRAGMA freelist_count")) * psize;
	cr_assert_leq(after, before / 4, "live bytes %lld, limit %lld", (long long)after, (long long)(before / 4));
	int64_t left = rows(db, "");
	cr_assert(left > 0 && left < 20000, "%lld rows left", (long long)left);
	char newest[100];
	snprintf(newest, sizeof(newest), "WHERE ts = %lld", (long long)(now - 1));
	cr_assert_eq(rows(db, newest), 1, "the newest row stays; the oldest went first");
	int64_t oldest = ldb_pragma(db, "SELECT min(ts) FROM logs");
	cr_assert_eq(oldest, now - left, "what is left is the newest, in one run: min %lld, left %lld", (long long)(now - oldest), (long long)left);
	sqlite3_close(db);
	unlink(path);
	unlink(strcat(path, "-wal"));
	rmdir(dir);
}

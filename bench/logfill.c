/*
 * bench/logfill.c -- fill a Bifrost-C request log store (logs.db) with synthetic rows,
 * or run SQL against one. Used by bench/logstore.sh.
 *
 *   logfill [-n ROWS] [-D DAYS] [-e END_MS] [-k KEYS] [-b BATCH] [-s SEED] DB
 *       Appends ROWS rows (default 10,000,000) to the table `logs` of DB, ts
 *       spread over the DAYS days (default 30) that end at END_MS (unix ms,
 *       default now), in ts order (as the gateway writes them: id grows with
 *       ts), with a daily cycle (the busiest hour has 3 times the traffic of
 *       the quietest; the cycle is counted from END_MS, not from UTC
 *       midnight, so every 24 hours hold 1/DAYS of the rows). The table must exist: start the gateway once with this
 *       data_dir so that it creates the schema itself (its indexes included;
 *       no copy of the schema is kept here to drift). Rows go in transactions of BATCH rows (default 500,000)
 *       with the gateway's own INSERT statement; during the fill the journal
 *       is off and synchronous=OFF, and journal_mode=WAL is set again at the
 *       end (the file is the gateway's format either way).
 *       Distributions: KEYS virtual keys (default 50, Zipf: vk-01 carries
 *       ~20%, 10% of rows have no key), 10 teams, 5 customers; 5 providers
 *       (40/25/15/10/10%) with 4 models each; latency log-normal per model
 *       (median 0.4-2.5 s), 40% streamed (ttfb ~ 0.35 s); tokens log-normal
 *       (in median ~600, out ~180), 30% with cache reads; cost from per-model
 *       prices; ~3.5% errors (429, 400, 401, 500, 502, 503, 504), 4% served
 *       after a fallback (attempts 2, `failed` set).
 *       Prints one key=value line: rows, secs, rows_per_s, since_ms, until_ms.
 *
 *   logfill -x SQL DB
 *       Runs SQL (one or more statements) and prints each result row, columns
 *       separated by tabs. Handy for "EXPLAIN QUERY PLAN SELECT ..." and counts.
 *
 *   logfill -E DB
 *       Evicts DB (and DB-wal, DB-shm) from the OS page cache: fdatasync, then
 *       posix_fadvise(DONTNEED). Used for the "cold" query timings.
 *
 * Build (SQLite from ./build.sh vendor):
 *   gcc -O2 -Ivendor/host/include -o bench/build/logfill bench/logfill.c \
 *       vendor/host/lib/libsqlite3.a -lpthread -lm
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlite3.h"

/* bifrost.c's ldb_insert_sql: the same statement the gateway runs. */
static const char insert_sql[] =
	"INSERT INTO logs(request_id, method, path, virtual_key_id, team_id, customer_id, provider, model,"
	" failed, error, client, user_agent, ts, status, attempts, latency_us, ttfb_us, stream, in_tokens,"
	" out_tokens, cache_read_tokens, cache_write_tokens, cost_micros, client_left, request_body, response_body)"
	" VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "logfill: %s: %s\n", what, db ? sqlite3_errmsg(db) : "error");
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- random numbers (xoshiro256**) ---- */
static uint64_t rs[4];
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rnd(void)
{
	uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
	rs[2] ^= rs[0], rs[3] ^= rs[1], rs[1] ^= rs[2], rs[0] ^= rs[3], rs[2] ^= t, rs[3] = rotl(rs[3], 45);
	return r;
}
static void seed(uint64_t s)
{
	for (int i = 0; i < 4; i++) { /* splitmix64 */
		uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rs[i] = z ^ (z >> 31);
	}
}
static double unif(void) { return (double)(rnd() >> 11) * 0x1.0p-53; }
static double gauss(void)
{
	double u = unif(), v = unif();
	return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}
static double lognorm(double median, double sigma) { return median * exp(sigma * gauss()); }
/* index drawn from cumulative weights cw[0..n-1] (cw[n-1] == 1) */
static int pick(const double *cw, int n)
{
	double u = unif();
	for (int i = 0; i < n; i++)
		if (u < cw[i])
			return i;
	return n - 1;
}

/* ---- the synthetic world ---- */
struct model {
	const char *name;
	double lat_ms, in_price, out_price; /* median latency; $ per 1M tokens = micro-$ per token */
};
static const char *const providers[] = { "openai", "anthropic", "azure", "bedrock", "vertex" };
static const double provider_w[] = { 0.40, 0.25, 0.15, 0.10, 0.10 };
static const struct model models[5][4] = {
	{ { "gpt-4o", 900, 2.5, 10 }, { "gpt-4o-mini", 500, 0.15, 0.6 }, { "gpt-4.1", 1100, 2, 8 }, { "o3-mini", 2500, 1.1, 4.4 } },
	{ { "claude-sonnet-4-5", 1400, 3, 15 }, { "claude-haiku-4-5", 600, 1, 5 }, { "claude-opus-4-1", 2400, 15, 75 }, { "claude-3-5-haiku", 550, 0.8, 4 } },
	{ { "gpt-4o", 950, 2.5, 10 }, { "gpt-4o-mini", 520, 0.15, 0.6 }, { "gpt-4.1-mini", 600, 0.4, 1.6 }, { "text-embedding-3-small", 120, 0.02, 0 } },
	{ { "anthropic.claude-sonnet-4", 1500, 3, 15 }, { "meta.llama3-70b", 800, 0.99, 0.99 }, { "amazon.nova-pro", 700, 0.8, 3.2 }, { "mistral.mistral-large", 900, 2, 6 } },
	{ { "gemini-2.5-pro", 1800, 1.25, 10 }, { "gemini-2.5-flash", 450, 0.3, 2.5 }, { "gemini-2.0-flash", 400, 0.1, 0.4 }, { "text-embedding-005", 100, 0.02, 0 } },
};
static const double model_w[] = { 0.45, 0.30, 0.15, 0.10 };
static const char *const agents[] = { "OpenAI/Python 1.51.0", "OpenAI/JS 4.67.3", "AsyncOpenAI/Python 1.51.0",
	"langchain-openai/0.2.1", "claude-cli/2.0.14 (external, cli)", "curl/7.88.1" };
static const double agent_w[] = { 0.35, 0.20, 0.15, 0.12, 0.10, 0.08 };
struct errkind {
	int status;
	const char *msg;
	double share, lat_ms; /* share of all rows; median latency */
};
static const struct errkind errs[] = {
	{ 429, "provider answered 429: Rate limit reached for requests", 0.012, 180 },
	{ 400, "provider answered 400: Invalid 'messages': empty array", 0.006, 90 },
	{ 401, "invalid virtual key", 0.003, 0.05 },
	{ 500, "provider answered 500: The server had an error while processing your request", 0.004, 2500 },
	{ 502, "provider connection failed: connection reset by peer", 0.004, 30 },
	{ 503, "provider answered 503: The engine is currently overloaded", 0.003, 800 },
	{ 504, "provider openai exceeded total_timeout_ms (60000 ms)", 0.003, 60000 },
};

static void cumul(const double *w, double *cw, int n)
{
	double s = 0, t = 0;
	for (int i = 0; i < n; i++)
		s += w[i];
	for (int i = 0; i < n; i++)
		cw[i] = (t += w[i]) / s;
}

static int run_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		die(db, path);
	sqlite3_busy_timeout(db, 5000);
	const char *tail = sql;
	while (tail && *tail) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, tail, -1, &st, &tail) != SQLITE_OK)
			die(db, "prepare");
		if (!st)
			break;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			for (int i = 0; i < sqlite3_column_count(st); i++) {
				const unsigned char *v = sqlite3_column_text(st, i);
				printf("%s%s", i ? "\t" : "", v ? (const char *)v : "NULL");
			}
			putchar('\n');
		}
		if (rc != SQLITE_DONE)
			die(db, "step");
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return 0;
}

static int evict(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (int i = 0; i < 3; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		int fd = open(p, O_RDONLY);
		if (fd < 0) {
			if (i == 0) {
				perror(p);
				return 1;
			}
			continue;
		}
		fdatasync(fd);
		int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		if (rc)
			fprintf(stderr, "logfill: posix_fadvise %s: %s\n", p, strerror(rc));
		close(fd);
	}
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *z)
{
	if (z && *z)
		sqlite3_bind_text(st, i, z, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}
static void bind_int(sqlite3_stmt *st, int i, int64_t v)
{
	if (v >= 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

int main(int argc, char **argv)
{
	long long rows = 10000000, end_ms = 0, batch = 500000, sd = 42;
	int days = 30, nkeys = 50, ev = 0, opt;
	const char *sql = NULL;
	while ((opt = getopt(argc, argv, "n:D:e:k:b:s:x:E")) != -1) {
		switch (opt) {
		case 'n': rows = atoll(optarg); break;
		case 'D': days = atoi(optarg); break;
		case 'e': end_ms = atoll(optarg); break;
		case 'k': nkeys = atoi(optarg); break;
		case 'b': batch = atoll(optarg); break;
		case 's': sd = atoll(optarg); break;
		case 'x': sql = optarg; break;
		case 'E': ev = 1; break;
		default:
			fprintf(stderr, "usage: logfill [-n ROWS] [-D DAYS] [-e END_MS] [-k KEYS] [-b BATCH] [-s SEED] DB\n"
					"       logfill -x SQL DB\n       logfill -E DB\n");
			return 2;
		}
	}
	if (optind != argc - 1 || rows < 0 || days < 1 || nkeys < 1 || nkeys > 999 || batch < 1) {
		fprintf(stderr, "logfill: bad arguments (see the comment at the top of bench/logfill.c)\n");
		return 2;
	}
	const char *path = argv[optind];
	if (sql)
		return run_sql(path, sql);
	if (ev)
		return evict(path);
	if (!end_ms) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		end_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	long long span = (long long)days * 86400000, start_ms = end_ms - span;
	seed((uint64_t)sd);

	sqlite3 *db;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		die(db, path);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *chk;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='logs'", -1, &chk, NULL) !=
	    SQLITE_OK)
		die(db, "sqlite_master");
	int have = sqlite3_step(chk) == SQLITE_ROW;
	sqlite3_finalize(chk);
	if (!have) {
		fprintf(stderr, "logfill: %s has no table logs: start the gateway once with this data_dir\n", path);
		return 1;
	}
	if (sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-524288;"
			     "PRAGMA temp_store=MEMORY",
			 NULL, NULL, NULL) != SQLITE_OK)
		die(db, "pragmas");
	sqlite3_stmt *ins;
	if (sqlite3_prepare_v2(db, insert_sql, -1, &ins, NULL) != SQLITE_OK)
		die(db, "prepare insert");

	/* keys: Zipf(1) weights, each with a team (10) and some with a customer (5) */
	double pw[5], mw[4], aw[6], *kw = calloc((size_t)nkeys, sizeof(double));
	cumul(provider_w, pw, 5);
	cumul(model_w, mw, 4);
	cumul(agent_w, aw, 6);
	for (int i = 0; i < nkeys; i++)
		kw[i] = 1.0 / (i + 1);
	cumul(kw, kw, nkeys);
	double err_share = 0;
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		err_share += errs[i].share;

	double t0 = now_s();
	char rid[40], vk[16], team[16], cust[16], client[48], failed[160];
	for (long long i = 0; i < rows; i++) {
		if (i % batch == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
			die(db, "begin");
		/* ts: evenly spread, then warped inside each 24 h (density 1 - 0.5 cos(2 pi f): 0.5 to 1.5) */
		double p = ((double)i + unif()) / (double)(rows ? rows : 1) * days;
		double d = floor(p), f = p - d;
		f -= 0.5 * sin(2 * M_PI * f) / (2 * M_PI);
		long long ts = start_ms + (long long)((d + f) * 86400000.0);

		int pi = pick(pw, 5), mi = pick(mw, 4), k = unif() < 0.10 ? -1 : pick(kw, nkeys);
		const struct model *m = &models[pi][mi];
		bool embed = m->out_price == 0;
		vk[0] = team[0] = cust[0] = 0;
		if (k >= 0) {
			snprintf(vk, sizeof(vk), "vk-%02d", k + 1);
			snprintf(team, sizeof(team), "team-%d", k % 10 + 1);
			if (k % 3 == 0)
				snprintf(cust, sizeof(cust), "cust-%d", k % 5 + 1);
		}
		uint64_t a = rnd(), b = rnd();
		snprintf(rid, sizeof(rid), "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
			 (unsigned)a & 0xfff, ((unsigned)(b >> 48) & 0x3fff) | 0x8000, (unsigned long long)b & 0xffffffffffffULL);
		snprintf(client, sizeof(client), "10.%d.%d.%d:%d", (int)(k < 0 ? 0 : k % 4), (int)(k < 0 ? 1 : k + 10),
			 (int)(rnd() % 8 + 2), (int)(rnd() % 28000 + 32768));
		const char *path_ = embed ? "/v1/embeddings" : unif() < 0.12 ? "/v1/messages" : "/v1/chat/completions";
		int stream = !embed && unif() < 0.40;

		/* outcome */
		int status = 200, attempts = 1, client_left = 0;
		const char *error = NULL;
		double lat_ms, ttfb_ms = -1;
		failed[0] = 0;
		double u = unif();
		const struct errkind *e = NULL;
		if (u < err_share) {
			for (size_t j = 0; j < sizeof(errs) / sizeof(errs[0]); j++)
				if ((u -= errs[j].share) < 0) {
					e = &errs[j];
					break;
				}
			if (!e)
				e = &errs[0];
		}
		long long in = -1, out = -1, cread = -1, cwrite = -1, cost = -1;
		if (e) {
			status = e->status;
			error = e->msg;
			lat_ms = lognorm(e->lat_ms, 0.5);
			if (status >= 500 && status != 504 && unif() < 0.5) {
				attempts = 2;
				snprintf(failed, sizeof(failed), "%s/%s:%d", providers[pi], m->name, status);
			}
		} else {
			in = (long long)fmin(lognorm(embed ? 40 : 600, 1.0), 120000) + 1;
			out = embed ? 0 : (long long)fmin(lognorm(180, 0.9), 8000) + 1;
			if (!embed && unif() < 0.30)
				cread = (long long)(in * (0.2 + 0.7 * unif()));
			if (!embed && unif() < 0.05)
				cwrite = (long long)(in * 0.5 * unif()) + 1;
			cost = (long long)llround(in * m->in_price + out * m->out_price + (cread > 0 ? cread : 0) * m->in_price / 10 +
						  (cwrite > 0 ? cwrite : 0) * m->in_price * 1.25);
			if (stream) {
				ttfb_ms = lognorm(350, 0.5) * m->lat_ms / 900;
				lat_ms = ttfb_ms + out * lognorm(12, 0.3);
				client_left = unif() < 0.003;
			} else {
				lat_ms = lognorm(m->lat_ms, 0.6) * (0.5 + out / 360.0);
			}
			if (unif() < 0.04) {
				int q = (pi + 1) % 5;
				attempts = 2;
				snprintf(failed, sizeof(failed), "%s/%s:%d", providers[q], models[q][0].name, unif() < 0.6 ? 429 : 503);
				lat_ms += lognorm(300, 0.8);
			}
		}
		long long lat_us = (long long)(lat_ms * 1000) + 30;
		const char *ua = agents[pick(aw, 6)];

		const char *texts[] = { unif() < 0.6 ? rid : NULL, "POST", path_, vk, team, cust, providers[pi], m->name,
					failed, error, client, ua };
		const int64_t ints[] = { ts, status, attempts, lat_us, ttfb_ms < 0 ? -1 : (long long)(ttfb_ms * 1000),
					 stream, in, out, cread, cwrite, cost, client_left };
		for (int j = 0; j < 12; j++)
			bind_text(ins, j + 1, texts[j]);
		for (int j = 0; j < 12; j++)
			bind_int(ins, j + 13, ints[j]);
		sqlite3_bind_null(ins, 25); /* request_body, response_body: logs.content is off by default */
		sqlite3_bind_null(ins, 26);
		if (sqlite3_step(ins) != SQLITE_DONE)
			die(db, "insert");
		sqlite3_reset(ins);
		if ((i + 1) % batch == 0 || i + 1 == rows) {
			if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
				die(db, "commit");
			if ((i + 1) % (batch * 4) == 0)
				fprintf(stderr, "logfill: %lld rows, %.0f s\n", i + 1, now_s() - t0);
		}
	}
	sqlite3_finalize(ins);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK)
		die(db, "journal_mode=WAL");
	sqlite3_close(db);
	double secs = now_s() - t0;
	printf("rows=%lld secs=%.1f rows_per_s=%.0f since_ms=%lld until_ms=%lld\n", rows, secs,
	       secs > 0 ? rows / secs : 0, start_ms, end_ms);
	free(kw);
	return 0;
}

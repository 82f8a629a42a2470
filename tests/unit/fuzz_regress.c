/*
 * Replays every committed fuzz input through its target (tests/fuzz/targets.h, the same
 * functions the libFuzzer drivers call), under ASan + UBSan like every unit test:
 *
 *   tests/fuzz/corpus/<target>/*    the seed corpora (realistic inputs: must stay clean)
 *   tests/fuzz/regress/<target>/*   every crash, UB or hang a fuzzer found (see FINDINGS.md)
 *
 * A file that crashes, trips a sanitizer or FUZZ_ASSERT, or runs longer than
 * FUZZ_REGRESS_TIMEOUT seconds (default 10; libFuzzer's limit is 1 s) fails its target's
 * test, and the file is named on stderr. Run from the repository root (build.sh does);
 * FUZZ_DIR overrides where tests/fuzz is.
 */
#include "../fuzz/targets.h"
#include <criterion/criterion.h>
#include <signal.h>
#include <sanitizer/common_interface_defs.h>

static char fr_current[PATH_MAX]; /* the file being replayed, for the death notes */

static void fr_say(const char *what)
{
	char line[PATH_MAX + 128];
	int n = snprintf(line, sizeof(line), "fuzz_regress: %s while replaying %s\n", what, fr_current);
	if (n > 0 && write(2, line, (size_t)MIN(n, (int)sizeof(line) - 1)) < 0)
		return;
}

static void fr_on_death(void) { fr_say("sanitizer report"); }

static void fr_on_signal(int sig)
{
	fr_say(sig == SIGALRM ? "TIMEOUT" : sig == SIGABRT ? "abort" : "fatal signal");
	signal(sig, SIG_DFL);
	if (sig == SIGALRM)
		abort();
	raise(sig);
}

static const char *fr_root(void)
{
	const char *d = getenv("FUZZ_DIR");
	return d && *d ? d : "tests/fuzz";
}

static int fr_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular file of DIR through fn, in name order. Returns how many. */
static int fr_replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t))
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			cr_assert_not_null(names);
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), fr_cmp);
	long limit = getenv("FUZZ_REGRESS_TIMEOUT") ? atol(getenv("FUZZ_REGRESS_TIMEOUT")) : 10;
	int done = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(fr_current, sizeof(fr_current), "%s/%s", dir, names[i]);
		struct stat st;
		if (stat(fr_current, &st) == 0 && S_ISREG(st.st_mode)) {
			FILE *f = fopen(fr_current, "rb");
			cr_assert_not_null(f, "cannot open %s", fr_current);
			size_t len = (size_t)st.st_size;
			uint8_t *buf = malloc(len ? len : 1);
			cr_assert_not_null(buf);
			cr_assert_eq(fread(buf, 1, len, f), len, "short read of %s", fr_current);
			fclose(f);
			alarm((unsigned)(limit > 0 ? limit : 10));
			fn(buf, len);
			alarm(0);
			free(buf);
			done++;
		}
		free(names[i]);
	}
	free(names);
	fr_current[0] = 0;
	return done;
}

static void fr_replay(const char *name)
{
	int (*fn)(const uint8_t *, size_t) = NULL;
	for (size_t i = 0; i < ARRAY_LEN(fuzz_targets); i++)
		if (strcmp(fuzz_targets[i].name, name) == 0)
			fn = fuzz_targets[i].fn;
	cr_assert_not_null(fn, "no fuzz target %s in targets.h", name);
	__sanitizer_set_death_callback(fr_on_death);
	signal(SIGALRM, fr_on_signal);
	signal(SIGABRT, fr_on_signal);
	signal(SIGSEGV, fr_on_signal);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/corpus/%s", fr_root(), name);
	int seeds = fr_replay_dir(dir, fn);
	snprintf(dir, sizeof(dir), "%s/regress/%s", fr_root(), name);
	int regress = fr_replay_dir(dir, fn);
	cr_expect_gt(seeds, 0, "tests/fuzz/corpus/%s holds no seed", name);
	cr_log_info("%s: %d seeds, %d regression inputs replayed", name, seeds, regress);
}

/* Each driver tests/fuzz/<name>.c has its replay here (and its entry in fuzz_targets[]). */
Test(fuzz_regress, every_target_has_a_driver)
{
	for (size_t i = 0; i < ARRAY_LEN(fuzz_targets); i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s.c", fr_root(), fuzz_targets[i].name);
		cr_expect_eq(access(p, R_OK), 0, "%s is missing", p);
	}
}

#define REPLAY(name)                                                                       \
	Test(fuzz_regress, name) { fr_replay(#name); }

REPLAY(http_request)
REPLAY(http_response)
REPLAY(http_chunked)
REPLAY(json_route)
REPLAY(sse)
REPLAY(xlate_request)
REPLAY(xlate_response)
REPLAY(xlate_stream_o2a)
REPLAY(xlate_stream_a2o)
REPLAY(count_tokens)
REPLAY(cfg)
REPLAY(jrnl)
REPLAY(http_query)
REPLAY(mgmt_doc)
REPLAY(evs)
REPLAY(sigv4)
REPLAY(resp)
REPLAY(bedrock)

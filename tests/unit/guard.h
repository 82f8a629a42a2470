/*
 * guard.h -- shared helpers for the unit tests.
 *
 * guard_put() copies an input so that its last byte sits right before a
 * PROT_NONE page: a parser that reads even one byte past the end it was given
 * faults (SIGSEGV), which Criterion reports as a crashed test.
 */
#ifndef BIFROST_TEST_GUARD_H
#define BIFROST_TEST_GUARD_H

#include <sys/mman.h>
#include <unistd.h>

struct guard {
	char *base;    /* mapping: data pages + one PROT_NONE page */
	size_t maplen;
	char *p;       /* the copied input; p + n is the guard page */
	size_t n;
};

/* Copy [s, s+n) to end exactly at a PROT_NONE page. The copy is writable. */
static char *guard_put(struct guard *g, const void *s, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t data = (n + pg - 1) / pg * pg;
	if (data == 0)
		data = pg;
	g->maplen = data + pg;
	g->base = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->base == MAP_FAILED)
		abort();
	if (mprotect(g->base + data, pg, PROT_NONE) != 0)
		abort();
	g->p = g->base + data - n;
	g->n = n;
	if (n)
		memcpy(g->p, s, n);
	return g->p;
}

static void guard_free(struct guard *g)
{
	if (g->base)
		munmap(g->base, g->maplen);
	g->base = g->p = NULL;
}

/* NUL-terminated literal without its NUL. */
#define GUARD_LIT(g, lit) guard_put((g), (lit), sizeof(lit) - 1)

#endif

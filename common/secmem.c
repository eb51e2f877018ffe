/*
 * secmem.c: the secure pool.  One mapping, fenced by PROT_NONE guard pages,
 * locked in RAM and left out of core dumps; a first-fit allocator with an
 * address-ordered, coalescing free list; every block wiped on free.  Also
 * the process-wide core dump refusal.  Callers decide what is secret; this
 * file never looks inside the blocks it hands out.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif

#include "common.h"

#define SECMEM_ALIGN		16
#define SECMEM_DEFAULT_POOL	(1024 * 1024)
#define SECMEM_USED_MAGIC	((uintptr_t)0x5ec3e3b10c6a11edULL)

/*
 * Every block starts with this header (16 bytes, so payloads stay 16-byte
 * aligned).  size covers header and payload.  A used block holds
 * SECMEM_USED_MAGIC in link; a free block holds the next free block
 * (address order) there, so that free payloads stay all zero.
 */
struct blk {
	size_t size;
	uintptr_t link;
};
_Static_assert(sizeof(struct blk) == SECMEM_ALIGN, "header keeps alignment");

#define HDR		sizeof(struct blk)
#define MIN_BLOCK	(2 * HDR)

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *map_base;	/* start of the mapping, incl. guards */
static size_t map_len;
static unsigned char *pool;	/* the usable pool, page aligned */
static size_t pool_len;
static struct blk *free_head;	/* address-ordered free list */
static size_t in_use_bytes;
static bool pool_locked;
/*
 * Set once, with release order, after pool and pool_len: from then on the
 * pool's bounds never change, so in_pool() reads them without the lock.
 */
static bool pool_ready;
/* Whether this thread's jansson allocations go to the pool. */
static __thread bool json_secure;

static inline struct blk *
blk_next_free(const struct blk *b)
{
	return (struct blk *)b->link;
}

static inline unsigned char *
blk_end(struct blk *b)
{
	return (unsigned char *)b + b->size;
}

/* Called with pool_lock held. */
static int
pool_setup(size_t want, bool required)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	size_t len;
	void *m;
	int saved;

	if (pool_ready)
		return 0;
	if (want < MIN_BLOCK)
		want = MIN_BLOCK;
	if (want > SIZE_MAX - 3 * page)
		return CG_ERR_LIMIT;
	len = (want + page - 1) / page * page;

	m = mmap(NULL, len + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (m == MAP_FAILED)
		return CG_ERR_NOMEM;
	if (mprotect((unsigned char *)m + page, len, PROT_READ | PROT_WRITE) != 0) {
		saved = errno;
		munmap(m, len + 2 * page);
		errno = saved;
		return CG_ERR_NOMEM;
	}
#ifdef MADV_DONTDUMP
	(void)madvise((unsigned char *)m + page, len, MADV_DONTDUMP);
#endif
	/*
	 * No MADV_WIPEONFORK: a child that daemonizes after this point would
	 * find the allocator's own headers zeroed.
	 */
	pool_locked = mlock((unsigned char *)m + page, len) == 0;
	if (!pool_locked && required) {
		saved = errno;
		munmap(m, len + 2 * page);
		errno = saved;
		return CG_ERR_PERM;
	}

	map_base = m;
	map_len = len + 2 * page;
	pool = map_base + page;
	pool_len = len;
	free_head = (struct blk *)pool;
	free_head->size = pool_len;
	free_head->link = 0;
	in_use_bytes = 0;
	__atomic_store_n(&pool_ready, true, __ATOMIC_RELEASE);
	return 0;
}

int
secmem_init(size_t pool_size, bool required)
{
	int r;

	pthread_mutex_lock(&pool_lock);
	r = pool_setup(pool_size, required);
	pthread_mutex_unlock(&pool_lock);
	return r;
}

bool
secmem_locked(void)
{
	bool l;

	pthread_mutex_lock(&pool_lock);
	l = pool_ready && pool_locked;
	pthread_mutex_unlock(&pool_lock);
	return l;
}

void
secmem_stats(size_t *in_use, size_t *total)
{
	pthread_mutex_lock(&pool_lock);
	if (in_use != NULL)
		*in_use = in_use_bytes;
	if (total != NULL)
		*total = pool_ready ? pool_len : 0;
	pthread_mutex_unlock(&pool_lock);
}

static bool
in_pool(const void *p)
{
	const unsigned char *c = p;

	return __atomic_load_n(&pool_ready, __ATOMIC_ACQUIRE) &&
	    c >= pool + HDR && c < pool + pool_len;
}

bool
secmem_owns(const void *p)
{
	return p != NULL && in_pool(p);
}

/* Header of a payload handed out earlier; aborts on a broken invariant. */
static struct blk *
used_header(void *p)
{
	struct blk *b;

	if (!in_pool(p) || ((uintptr_t)p - (uintptr_t)pool) % SECMEM_ALIGN != 0)
		abort();
	b = (struct blk *)((unsigned char *)p - HDR);
	if (b->link != SECMEM_USED_MAGIC || b->size < MIN_BLOCK ||
	    b->size > (size_t)(pool + pool_len - (unsigned char *)b))
		abort();
	return b;
}

/* Called with pool_lock held. */
static void *
alloc_locked(size_t n)
{
	struct blk *b, *prev = NULL, *rest;
	size_t need;

	if (!pool_ready && pool_setup(SECMEM_DEFAULT_POOL, false) != 0)
		return NULL;
	if (n > pool_len)
		return NULL;
	need = (n + HDR + SECMEM_ALIGN - 1) / SECMEM_ALIGN * SECMEM_ALIGN;
	if (need < MIN_BLOCK)
		need = MIN_BLOCK;

	for (b = free_head; b != NULL; prev = b, b = blk_next_free(b)) {
		if (b->size >= need)
			break;
	}
	if (b == NULL)
		return NULL;

	if (b->size - need >= MIN_BLOCK) {
		/* Split: the tail stays free, in b's place on the list. */
		rest = (struct blk *)((unsigned char *)b + need);
		rest->size = b->size - need;
		rest->link = b->link;
		b->size = need;
		if (prev != NULL)
			prev->link = (uintptr_t)rest;
		else
			free_head = rest;
	} else {
		if (prev != NULL)
			prev->link = b->link;
		else
			free_head = blk_next_free(b);
	}
	b->link = SECMEM_USED_MAGIC;
	in_use_bytes += b->size;
	memset((unsigned char *)b + HDR, 0, b->size - HDR);
	return (unsigned char *)b + HDR;
}

/* Called with pool_lock held. */
static void
free_locked(void *p)
{
	struct blk *b = used_header(p), *prev = NULL, *next;

	in_use_bytes -= b->size;
	cg_wipe((unsigned char *)b + HDR, b->size - HDR);

	for (next = free_head; next != NULL && next < b; next = blk_next_free(next))
		prev = next;
	/* Merge with the following block when they touch. */
	if (next != NULL && blk_end(b) == (unsigned char *)next) {
		b->size += next->size;
		b->link = next->link;
		cg_wipe(next, HDR);
	} else
		b->link = (uintptr_t)next;
	/* And with the preceding one. */
	if (prev != NULL && blk_end(prev) == (unsigned char *)b) {
		prev->size += b->size;
		prev->link = b->link;
		cg_wipe(b, HDR);
	} else if (prev != NULL)
		prev->link = (uintptr_t)b;
	else
		free_head = b;
}

void *
secmem_alloc(size_t n)
{
	void *p;

	pthread_mutex_lock(&pool_lock);
	p = alloc_locked(n);
	pthread_mutex_unlock(&pool_lock);
	return p;
}

void
secmem_free(void *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&pool_lock);
	free_locked(p);
	pthread_mutex_unlock(&pool_lock);
}

void *
secmem_realloc(void *p, size_t n)
{
	struct blk *b;
	size_t cap;
	void *np;

	if (p == NULL)
		return secmem_alloc(n);
	if (n == 0) {
		secmem_free(p);
		return NULL;
	}
	pthread_mutex_lock(&pool_lock);
	b = used_header(p);
	cap = b->size - HDR;
	if (n <= cap) {
		/* Fits: wipe what is no longer in use so it reads as zero. */
		cg_wipe((unsigned char *)p + n, cap - n);
		pthread_mutex_unlock(&pool_lock);
		return p;
	}
	if ((np = alloc_locked(n)) != NULL) {
		memcpy(np, p, cap);
		free_locked(p);
	}
	pthread_mutex_unlock(&pool_lock);
	return np;
}

char *
secmem_strndup(const char *s, size_t n)
{
	char *d;

	if (s == NULL)
		return NULL;
	n = strnlen(s, n);
	if (n == SIZE_MAX || (d = secmem_alloc(n + 1)) == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/*
 * jansson allocates from the pool only inside a secmem_json_secure(true)
 * scope of the calling thread, and from the C heap everywhere else: claims,
 * audit events and metrics are not secret, and putting them in the pool
 * would exhaust it and put a lock on every request.  A free goes where the
 * block came from, whichever thread and scope it happens in.
 */
static void *
json_dispatch_malloc(size_t n)
{
	return json_secure ? secmem_alloc(n) : malloc(n);
}

static void
json_dispatch_free(void *p)
{
	if (p == NULL)
		return;
	if (in_pool(p))
		secmem_free(p);
	else
		free(p);
}

void
secmem_use_for_json(void)
{
	json_set_alloc_funcs(json_dispatch_malloc, json_dispatch_free);
}

bool
secmem_json_secure(bool on)
{
	bool was = json_secure;

	json_secure = on;
	return was;
}

int
cg_disable_core_dumps(void)
{
	struct rlimit rl = { 0, 0 };

#if defined(HAVE_PRCTL) && defined(PR_SET_DUMPABLE)
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return CG_ERR_IO;
#endif
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		return CG_ERR_IO;
	return 0;
}

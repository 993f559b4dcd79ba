/*
 * The C interface, from C: every function, every status code, discard
 * observed through each operation, pins from 4 threads racing dsc_reclaim,
 * deferred free, misuse that aborts, and the byte-string cache under a
 * tight capacity with every hit's bytes checked.
 *
 * Built and run by .ci/capi.sh, plainly and under AddressSanitizer and
 * UndefinedBehaviorSanitizer:
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude capi/tests/capi_test.c \
 *      -Ltarget/debug -ldiscardable_capi -lpthread -o capi_test
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#define _GNU_SOURCE
#include <discardable.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Atomic: the pinning threads check too. */
static atomic_int passed, failed;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (cond) {                                                               \
            passed++;                                                             \
        } else {                                                                  \
            failed++;                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                         \
    } while (0)

#define STATUS(expr, want)                                                            \
    do {                                                                              \
        dsc_status got_ = (expr);                                                     \
        if (got_ == (want)) {                                                         \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, \
                    #expr, dsc_status_str(got_), dsc_status_str(want));               \
        }                                                                             \
    } while (0)

/* A manager of its own for one test, with a limit that is never reached. */
static dsc_manager *new_manager(size_t limit) {
    dsc_config cfg;
    dsc_config_init(&cfg);
    cfg.limit = limit;
    dsc_manager *m = NULL;
    dsc_status s = dsc_manager_new(&cfg, &m);
    if (s != DSC_OK || m == NULL) {
        fprintf(stderr, "dsc_manager_new: %s\n", dsc_status_str(s));
        exit(2);
    }
    return m;
}

static dsc_stats stats_of(dsc_manager *m) {
    dsc_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    dsc_manager_stats(m, &st);
    return st;
}

/* ------------------------------------------------------------------------ */

static void test_status_names(void) {
    static const char *const names[] = {"DSC_OK", "DSC_DISCARDED", "DSC_OUT_OF_RANGE", "DSC_INVALID",
                                        "DSC_NO_MEMORY", "DSC_NOT_FOUND", "DSC_ALREADY_STARTED"};
    dsc_status all[] = {DSC_OK, DSC_DISCARDED, DSC_OUT_OF_RANGE, DSC_INVALID,
                        DSC_NO_MEMORY, DSC_NOT_FOUND, DSC_ALREADY_STARTED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK((size_t)all[i] == i);
        CHECK(strcmp(dsc_status_str(all[i]), names[i]) == 0);
    }
    CHECK(DSC_OK == 0);
    CHECK(strcmp(dsc_status_str((dsc_status)42), "DSC_UNKNOWN") == 0);
    CHECK(strcmp(dsc_status_str((dsc_status)-1), "DSC_UNKNOWN") == 0);
}

static void test_config_and_managers(void) {
    dsc_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    dsc_config_init(&cfg);
    CHECK(cfg.struct_size == sizeof cfg);
    CHECK(cfg.policy == DSC_POLICY_CLOCK);
    CHECK(cfg.limit == SIZE_MAX);
    CHECK(cfg.lazy == 0);
    CHECK(cfg.process_limit == 0);
    dsc_config_init(NULL); /* no-op */

    dsc_manager *m = NULL;
    STATUS(dsc_manager_new(&cfg, NULL), DSC_INVALID);

    dsc_config bad = cfg;
    bad.limit = 0;
    STATUS(dsc_manager_new(&bad, &m), DSC_INVALID);
    CHECK(m == NULL);
    bad = cfg;
    bad.policy = (dsc_policy)99;
    STATUS(dsc_manager_new(&bad, &m), DSC_INVALID);
    bad = cfg;
    bad.struct_size = 0;
    STATUS(dsc_manager_new(&bad, &m), DSC_INVALID);
    bad = cfg;
    bad.struct_size = sizeof(size_t) - 1;
    STATUS(dsc_manager_new(&bad, &m), DSC_INVALID);
    CHECK(m == NULL);

    /* Every policy, lazy mode, and the defaults. */
    dsc_policy policies[] = {DSC_POLICY_LRU, DSC_POLICY_CLOCK, DSC_POLICY_FIFO, DSC_POLICY_S3FIFO};
    for (size_t i = 0; i < 4; i++) {
        dsc_config c = cfg;
        c.policy = policies[i];
        c.limit = 1 << 20;
        c.lazy = (int)(i % 2);
        STATUS(dsc_manager_new(&c, &m), DSC_OK);
        CHECK(m != NULL);
        CHECK(stats_of(m).limit == 1 << 20);
        dsc_manager_free(m);
        m = NULL;
    }
    STATUS(dsc_manager_new(NULL, &m), DSC_OK);
    CHECK(m != NULL && stats_of(m).limit > 0 && stats_of(m).limit < SIZE_MAX);
    dsc_manager_free(m);

    /* An old caller whose dsc_config ends before `limit`: the rest (and the
     * bytes after its struct) are never read; the limit is the default. */
    struct {
        dsc_config head;
    } old;
    memset(&old, 0, sizeof old);
    old.head.struct_size = offsetof(dsc_config, limit);
    old.head.policy = DSC_POLICY_FIFO;
    old.head.limit = 0; /* beyond its size: would be DSC_INVALID if read */
    m = NULL;
    STATUS(dsc_manager_new(&old.head, &m), DSC_OK);
    CHECK(m != NULL && stats_of(m).limit > 0);
    dsc_manager_free(m);
    dsc_manager_free(NULL); /* no-op */
}

static void test_stats_prefix(void) {
    dsc_manager *m = new_manager(1 << 20);
    dsc_handle *h = dsc_alloc(m, 5000);
    CHECK(h != NULL);

    dsc_stats st = stats_of(m);
    CHECK(st.struct_size == sizeof st);
    CHECK(st.allocations == 1);
    CHECK(st.discardable_bytes >= 5000);
    CHECK(st.limit == 1 << 20);
    CHECK(st.discarded_count == 0);

    /* Only the fields the caller's size covers are written. */
    dsc_stats part;
    memset(&part, 0xEE, sizeof part);
    part.struct_size = offsetof(dsc_stats, strong_bytes);
    dsc_manager_stats(m, &part);
    CHECK(part.struct_size == offsetof(dsc_stats, strong_bytes));
    CHECK(part.discardable_bytes == st.discardable_bytes);
    unsigned char ee[sizeof(size_t)];
    memset(ee, 0xEE, sizeof ee);
    CHECK(memcmp(&part.strong_bytes, ee, sizeof ee) == 0);
    CHECK(memcmp(&part.passes, ee, sizeof part.passes) == 0);

    dsc_stats none;
    memset(&none, 0xEE, sizeof none);
    none.struct_size = 0;
    dsc_manager_stats(m, &none);
    CHECK(memcmp(&none.discardable_bytes, ee, sizeof ee) == 0);

    dsc_manager_stats(NULL, &st); /* no-ops */
    dsc_manager_stats(m, NULL);

    CHECK(dsc_reclaim(m, SIZE_MAX) >= 5000);
    st = stats_of(m);
    CHECK(st.discarded_count == 1);
    CHECK(st.discarded_bytes >= 5000);
    CHECK(st.discardable_bytes == 0);
    CHECK(dsc_reclaim(NULL, SIZE_MAX) == 0);
    dsc_free(h);
    CHECK(stats_of(m).allocations == 0);
    dsc_manager_free(m);
}

static void test_alloc_pin_unpin(void) {
    dsc_manager *m = new_manager(64 << 20);
    size_t sizes[] = {1, 64, 1000, 4096, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        dsc_handle *h = dsc_alloc(m, n);
        CHECK(h != NULL);
        CHECK(dsc_size(h) == n);
        CHECK(dsc_is_discarded(h) == 0);
        unsigned char *p = dsc_pin(h);
        CHECK(p != NULL);
        int zero = 1;
        for (size_t j = 0; j < n; j++) zero &= p[j] == 0;
        CHECK(zero);
        memset(p, (int)i + 1, n);
        /* Pins nest, count, and return the same address. */
        CHECK(dsc_pin(h) == p);
        CHECK(dsc_reclaim(m, SIZE_MAX) == 0);
        dsc_unpin(h);
        CHECK(dsc_reclaim(m, SIZE_MAX) == 0);
        CHECK(dsc_is_discarded(h) == 0);
        CHECK(dsc_pin(h) == p && p[n - 1] == (unsigned char)(i + 1));
        dsc_unpin(h);
        dsc_unpin(h);
        CHECK(dsc_reclaim(m, SIZE_MAX) >= n);
        CHECK(dsc_is_discarded(h) == 1);
        CHECK(dsc_pin(h) == NULL);
        CHECK(dsc_pin(h) == NULL);
        CHECK(dsc_size(h) == n);
        dsc_free(h);
    }

    /* An empty handle is valid. */
    dsc_handle *e = dsc_alloc(m, 0);
    CHECK(e != NULL);
    CHECK(dsc_size(e) == 0);
    void *ep = dsc_pin(e);
    CHECK(ep != NULL);
    CHECK(dsc_pin(e) == ep);
    dsc_unpin(e);
    dsc_unpin(e);
    STATUS(dsc_read(e, 0, NULL, 0), DSC_OK);
    STATUS(dsc_read(e, 0, ep, 1), DSC_OUT_OF_RANGE);
    dsc_free(e);

    /* Too large: NULL, not an abort. */
    CHECK(dsc_alloc(m, SIZE_MAX) == NULL);
    CHECK(dsc_alloc(m, (size_t)PTRDIFF_MAX + 1) == NULL);

    /* NULL is a no-op everywhere. */
    CHECK(dsc_size(NULL) == 0);
    CHECK(dsc_is_discarded(NULL) == 1);
    CHECK(dsc_pin(NULL) == NULL);
    dsc_unpin(NULL);
    dsc_free(NULL);
    dsc_manager_free(m);
}

/* Every offset operation: results, ranges, NULL arguments. */
static void test_offset_ops(void) {
    dsc_manager *m = new_manager(64 << 20);
    enum { N = 256 };
    dsc_handle *h = dsc_alloc(m, N);
    unsigned char ref[N], buf[N];
    for (int i = 0; i < N; i++) ref[i] = (unsigned char)(i * 7 + 3);

    STATUS(dsc_write(h, 0, ref, N), DSC_OK);
    memset(buf, 0, N);
    STATUS(dsc_read(h, 0, buf, N), DSC_OK);
    CHECK(memcmp(buf, ref, N) == 0);
    STATUS(dsc_read(h, 100, buf, 10), DSC_OK);
    CHECK(memcmp(buf, ref + 100, 10) == 0);
    STATUS(dsc_write(h, 250, "abcdef", 6), DSC_OK);
    memcpy(ref + 250, "abcdef", 6);
    STATUS(dsc_read(h, 250, buf, 6), DSC_OK);
    CHECK(memcmp(buf, "abcdef", 6) == 0);
    STATUS(dsc_write(h, 251, "x", 6), DSC_OUT_OF_RANGE);

    /* dsc_move handles overlap both ways, like memmove. */
    STATUS(dsc_move(h, 10, 0, 100), DSC_OK);
    memmove(ref + 10, ref, 100);
    STATUS(dsc_move(h, 0, 20, 100), DSC_OK);
    memmove(ref, ref + 20, 100);
    STATUS(dsc_move(h, 200, 100, 50), DSC_OK);
    memmove(ref + 200, ref + 100, 50);
    STATUS(dsc_read(h, 0, buf, N), DSC_OK);
    CHECK(memcmp(buf, ref, N) == 0);

    /* dsc_compare: memcmp's sign, as unsigned bytes. */
    int r = 99;
    STATUS(dsc_compare(h, 0, ref, N, &r), DSC_OK);
    CHECK(r == 0);
    unsigned char less[8], more[8];
    memcpy(less, ref + 40, 8);
    memcpy(more, ref + 40, 8);
    less[5] = (unsigned char)(ref[45] - 1); /* ours is greater */
    more[5] = (unsigned char)(ref[45] + 1); /* ours is less */
    if (ref[45] == 0 || ref[45] == 255) {
        fprintf(stderr, "test data edge\n");
        exit(2);
    }
    STATUS(dsc_compare(h, 40, less, 8, &r), DSC_OK);
    CHECK(r > 0);
    STATUS(dsc_compare(h, 40, more, 8, &r), DSC_OK);
    CHECK(r < 0);
    STATUS(dsc_fill(h, 60, 0xFF, 1), DSC_OK);
    ref[60] = 0xFF;
    unsigned char low = 0x01;
    STATUS(dsc_compare(h, 60, &low, 1, &r), DSC_OK);
    CHECK(r > 0); /* 0xFF > 0x01 unsigned */
    r = 99;
    STATUS(dsc_compare(h, 3, NULL, 0, &r), DSC_OK);
    CHECK(r == 0);

    /* dsc_find: absolute offsets, (unsigned char) conversion, NOT_FOUND. */
    STATUS(dsc_fill(h, 0, 0, N), DSC_OK);
    memset(ref, 0, N);
    STATUS(dsc_fill(h, 120, 'q', 3), DSC_OK);
    STATUS(dsc_fill(h, 200, 0x1FF, 1), DSC_OK); /* byte 0xFF */
    memset(ref + 120, 'q', 3);
    ref[200] = 0xFF;
    size_t pos = 12345;
    STATUS(dsc_find(h, 0, 'q', N, &pos), DSC_OK);
    CHECK(pos == 120);
    STATUS(dsc_find(h, 121, 'q', 10, &pos), DSC_OK);
    CHECK(pos == 121);
    pos = 777;
    STATUS(dsc_find(h, 123, 'q', 50, &pos), DSC_NOT_FOUND);
    CHECK(pos == 777);
    STATUS(dsc_find(h, 0, 'q', 120, &pos), DSC_NOT_FOUND);
    STATUS(dsc_find(h, 0, -1, N, &pos), DSC_OK);
    CHECK(pos == 200);
    STATUS(dsc_find(h, 10, 'q', 0, &pos), DSC_NOT_FOUND);
    STATUS(dsc_read(h, 0, buf, N), DSC_OK);
    CHECK(memcmp(buf, ref, N) == 0);

    /* Ranges: past the end, and overflowing. */
    STATUS(dsc_read(h, N, buf, 0), DSC_OK);
    STATUS(dsc_read(h, N + 1, buf, 0), DSC_OUT_OF_RANGE);
    STATUS(dsc_read(h, N - 1, buf, 2), DSC_OUT_OF_RANGE);
    STATUS(dsc_read(h, SIZE_MAX, buf, 2), DSC_OUT_OF_RANGE);
    STATUS(dsc_write(h, 1, buf, SIZE_MAX), DSC_OUT_OF_RANGE);
    STATUS(dsc_move(h, 0, N - 10, 11), DSC_OUT_OF_RANGE);
    STATUS(dsc_move(h, N - 10, 0, 11), DSC_OUT_OF_RANGE);
    STATUS(dsc_move(h, SIZE_MAX, 0, 1), DSC_OUT_OF_RANGE);
    STATUS(dsc_compare(h, N, buf, 1, &r), DSC_OUT_OF_RANGE);
    STATUS(dsc_find(h, SIZE_MAX, 0, SIZE_MAX, &pos), DSC_OUT_OF_RANGE);
    STATUS(dsc_fill(h, 0, 0, N + 1), DSC_OUT_OF_RANGE);

    /* NULL arguments. */
    STATUS(dsc_read(NULL, 0, buf, 1), DSC_INVALID);
    STATUS(dsc_read(h, 0, NULL, 1), DSC_INVALID);
    STATUS(dsc_write(NULL, 0, buf, 1), DSC_INVALID);
    STATUS(dsc_write(h, 0, NULL, 1), DSC_INVALID);
    STATUS(dsc_move(NULL, 0, 0, 1), DSC_INVALID);
    STATUS(dsc_compare(NULL, 0, buf, 1, &r), DSC_INVALID);
    STATUS(dsc_compare(h, 0, NULL, 1, &r), DSC_INVALID);
    STATUS(dsc_compare(h, 0, buf, 1, NULL), DSC_INVALID);
    STATUS(dsc_find(NULL, 0, 0, 1, &pos), DSC_INVALID);
    STATUS(dsc_find(h, 0, 0, 1, NULL), DSC_INVALID);
    STATUS(dsc_fill(NULL, 0, 0, 1), DSC_INVALID);
    STATUS(dsc_write(h, 0, NULL, 0), DSC_OK);

    dsc_free(h);
    dsc_manager_free(m);
}

/* Once discarded, every operation says so and touches no caller buffer;
 * ranges are still checked first. */
static void test_discard_through_each_op(void) {
    dsc_manager *m = new_manager(64 << 20);
    dsc_handle *h = dsc_alloc(m, 8192);
    STATUS(dsc_fill(h, 0, 'z', 8192), DSC_OK);
    CHECK(dsc_reclaim(m, 1) >= 8192);
    CHECK(dsc_is_discarded(h) == 1);

    unsigned char buf[64];
    memset(buf, 0x5A, sizeof buf);
    int r = 1234;
    size_t pos = 4321;
    STATUS(dsc_read(h, 0, buf, sizeof buf), DSC_DISCARDED);
    STATUS(dsc_read(h, 0, buf, 0), DSC_DISCARDED);
    STATUS(dsc_write(h, 0, buf, sizeof buf), DSC_DISCARDED);
    STATUS(dsc_move(h, 0, 64, 64), DSC_DISCARDED);
    STATUS(dsc_compare(h, 0, buf, sizeof buf, &r), DSC_DISCARDED);
    STATUS(dsc_find(h, 0, 'z', 8192, &pos), DSC_DISCARDED);
    STATUS(dsc_fill(h, 0, 1, 10), DSC_DISCARDED);
    CHECK(dsc_pin(h) == NULL);
    int untouched = 1;
    for (size_t i = 0; i < sizeof buf; i++) untouched &= buf[i] == 0x5A;
    CHECK(untouched);
    CHECK(r == 1234 && pos == 4321);
    STATUS(dsc_read(h, 8000, buf, 500), DSC_OUT_OF_RANGE);
    STATUS(dsc_fill(h, SIZE_MAX, 0, 2), DSC_OUT_OF_RANGE);
    dsc_free(h);
    dsc_manager_free(m);
}

/* ------------------------------------------------------------------------ */
/* Deferred free: a handle freed while pinned lives until the last unpin. */

struct unpinner {
    dsc_handle *h;
    unsigned char *p;
    int ok;
};

static void *check_then_unpin(void *arg) {
    struct unpinner *u = arg;
    u->ok = u->p[0] == 'd' && u->p[4095] == 'd';
    dsc_unpin(u->h);
    return NULL;
}

static void test_deferred_free(void) {
    dsc_manager *m = new_manager(64 << 20);
    dsc_handle *h = dsc_alloc(m, 4096);
    STATUS(dsc_fill(h, 0, 'd', 4096), DSC_OK);
    unsigned char *p = dsc_pin(h);
    CHECK(dsc_pin(h) == p);
    CHECK(stats_of(m).allocations == 1);
    dsc_free(h);
    /* Still pinned twice: the handle and its bytes stay. */
    CHECK(stats_of(m).allocations == 1);
    CHECK(dsc_reclaim(m, SIZE_MAX) == 0);
    CHECK(p[0] == 'd' && p[4095] == 'd');
    CHECK(dsc_size(h) == 4096);
    STATUS(dsc_read(h, 0, (unsigned char[4]){0}, 4), DSC_OK);
    /* One unpin from another thread, the last from this one. */
    struct unpinner u = {h, p, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, check_then_unpin, &u) == 0);
    pthread_join(t, NULL);
    CHECK(u.ok);
    CHECK(stats_of(m).allocations == 1);
    CHECK(p[100] == 'd');
    dsc_unpin(h); /* the last: releases it */
    CHECK(stats_of(m).allocations == 0);
    CHECK(stats_of(m).discardable_bytes == 0);

    /* The last unpin on another thread releases it too. */
    h = dsc_alloc(m, 100);
    p = dsc_pin(h);
    p[0] = 'd';
    p[99] = 0;
    dsc_free(h);
    struct unpinner v = {h, p, 0};
    CHECK(pthread_create(&t, NULL, check_then_unpin, &v) == 0);
    pthread_join(t, NULL);
    CHECK(stats_of(m).allocations == 0);

    /* Freed unpinned: released at once. */
    h = dsc_alloc(m, 100);
    dsc_free(h);
    CHECK(stats_of(m).allocations == 0);
    dsc_manager_free(m);
}

/* Handles outlive their manager. */
static void test_handles_outlive_manager(void) {
    dsc_manager *m = new_manager(64 << 20);
    dsc_handle *h = dsc_alloc(m, 300);
    STATUS(dsc_write(h, 0, "kept", 4), DSC_OK);
    dsc_manager_free(m);
    char buf[4];
    STATUS(dsc_read(h, 0, buf, 4), DSC_OK);
    CHECK(memcmp(buf, "kept", 4) == 0);
    char *p = dsc_pin(h);
    CHECK(p != NULL && p[3] == 't');
    dsc_free(h);
    dsc_unpin(h);
}

/* ------------------------------------------------------------------------ */
/* Misuse aborts with a message: run each in a child, read its stderr. */

static void expect_abort(const char *what, void (*body)(void), const char *message) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        body();
        _exit(0); /* not reached if it aborts */
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof out - 1 && (k = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)k;
    out[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    if (!aborted || strstr(out, message) == NULL)
        fprintf(stderr, "%s: status %d, stderr: %s\n", what, status, out);
    CHECK(aborted);
    CHECK(strstr(out, message) != NULL);
}

static void double_free_while_pinned(void) {
    dsc_handle *h = dsc_alloc(NULL, 64);
    dsc_pin(h);
    dsc_free(h);
    dsc_free(h);
}

static void unpin_without_pin(void) {
    dsc_handle *h = dsc_alloc(NULL, 64);
    dsc_pin(h);
    dsc_unpin(h);
    dsc_unpin(h);
}

static void pin_after_free(void) {
    dsc_handle *h = dsc_alloc(NULL, 64);
    dsc_pin(h);
    dsc_free(h);
    dsc_pin(h);
}

static void double_free_after_release(void) {
    dsc_handle *h = dsc_alloc(NULL, 64);
    dsc_free(h);
    dsc_free(h);
}

static void unpin_after_release(void) {
    dsc_handle *h = dsc_alloc(NULL, 64);
    dsc_pin(h);
    dsc_free(h);
    dsc_unpin(h); /* the last reference: released here */
    dsc_unpin(h);
}

static void read_after_release(void) {
    dsc_handle *h = dsc_alloc(NULL, 64);
    char buf[8];
    dsc_free(h);
    (void)dsc_read(h, 0, buf, sizeof buf);
}

static void test_misuse_aborts(void) {
    expect_abort("double free", double_free_while_pinned, "dsc_free: the handle was freed twice");
    expect_abort("double free after the release", double_free_after_release, "dsc_free: the handle was freed twice");
    expect_abort("unpin after the release", unpin_after_release, "dsc_unpin: the handle was already released");
    expect_abort("read after the release", read_after_release, "the handle was already released");
    expect_abort("unpin without pin", unpin_without_pin, "dsc_unpin: no pin outstanding");
    expect_abort("pin after free", pin_after_free, "dsc_pin: the handle was already passed to dsc_free");
}

/* ------------------------------------------------------------------------ */
/* 4 threads pinning and reading while the main thread runs dsc_reclaim. */

enum { HANDLES = 64, HSIZE = 4096, THREADS = 4, ROUNDS = 20 };

struct race {
    dsc_handle *h[HANDLES];
    atomic_int stop;
    atomic_long pinned, refused, corrupt, held_across;
    atomic_long reclaims; /* dsc_reclaim calls finished */
};

static void *pinner(void *arg) {
    struct race *r = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&r->stop)) {
        seed = seed * 1103515245u + 12345u;
        size_t i = (seed >> 8) % HANDLES;
        unsigned char *p = dsc_pin(r->h[i]);
        if (p == NULL) {
            atomic_fetch_add(&r->refused, 1);
            continue;
        }
        atomic_fetch_add(&r->pinned, 1);
        long before = atomic_load(&r->reclaims);
        int ok = p[0] == (unsigned char)i && p[HSIZE - 1] == (unsigned char)i && p[(seed >> 4) % HSIZE] == (unsigned char)i;
        /* Nest a second pin and an offset read while pinned. */
        CHECK(dsc_pin(r->h[i]) == p);
        unsigned char b[16];
        ok &= dsc_read(r->h[i], 100, b, sizeof b) == DSC_OK && b[0] == (unsigned char)i && b[15] == (unsigned char)i;
        dsc_unpin(r->h[i]);
        for (int spin = 0; spin < 200; spin++) {
            if (atomic_load(&r->reclaims) != before) break;
            sched_yield();
        }
        if (atomic_load(&r->reclaims) != before) atomic_fetch_add(&r->held_across, 1);
        ok &= p[0] == (unsigned char)i && p[HSIZE / 2] == (unsigned char)i && p[HSIZE - 1] == (unsigned char)i;
        if (!ok) atomic_fetch_add(&r->corrupt, 1);
        dsc_unpin(r->h[i]);
    }
    return NULL;
}

static void test_threads_race_reclaim(void) {
    dsc_manager *m = new_manager(64 << 20);
    struct race r;
    memset(&r, 0, sizeof r);
    long discarded_total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < HANDLES; i++) {
            r.h[i] = dsc_alloc(m, HSIZE);
            dsc_fill(r.h[i], 0, (int)i, HSIZE);
        }
        atomic_store(&r.stop, 0);
        pthread_t t[THREADS];
        for (int k = 0; k < THREADS; k++) CHECK(pthread_create(&t[k], NULL, pinner, &r) == 0);
        /* Reclaim a few handles' worth at a time, then everything. */
        for (int k = 0; k < 8; k++) {
            usleep(500);
            dsc_reclaim(m, 4 * HSIZE);
            atomic_fetch_add(&r.reclaims, 1);
        }
        dsc_reclaim(m, SIZE_MAX);
        atomic_fetch_add(&r.reclaims, 1);
        usleep(1000);
        atomic_store(&r.stop, 1);
        for (int k = 0; k < THREADS; k++) pthread_join(t[k], NULL);
        /* No pins left: everything goes now. */
        dsc_reclaim(m, SIZE_MAX);
        for (size_t i = 0; i < HANDLES; i++) {
            discarded_total += dsc_is_discarded(r.h[i]);
            dsc_free(r.h[i]);
        }
    }
    printf("race: %ld pins, %ld refused, %ld held across a reclaim, %ld corrupt\n", atomic_load(&r.pinned),
           atomic_load(&r.refused), atomic_load(&r.held_across), atomic_load(&r.corrupt));
    CHECK(atomic_load(&r.corrupt) == 0);
    CHECK(atomic_load(&r.pinned) > 0);
    CHECK(atomic_load(&r.refused) > 0);
    CHECK(atomic_load(&r.held_across) > 0);
    CHECK(discarded_total == (long)HANDLES * ROUNDS);
    CHECK(stats_of(m).allocations == 0);
    dsc_manager_free(m);
}

/* ------------------------------------------------------------------------ */
/* The byte-string cache. */

/* The value of key `k`: its length and bytes are functions of `k`. */
static size_t value_len(unsigned k) { return 200 + (k * 37) % 1800; }
static unsigned char value_byte(unsigned k, size_t j) { return (unsigned char)(k * 131 + j * 7); }

static void make_value(unsigned k, unsigned char *out) {
    for (size_t j = 0; j < value_len(k); j++) out[j] = value_byte(k, j);
}

static int value_ok(unsigned k, const unsigned char *v, size_t n) {
    if (n != value_len(k)) return 0;
    for (size_t j = 0; j < n; j++)
        if (v[j] != value_byte(k, j)) return 0;
    return 1;
}

static void test_cache_tight_capacity(void) {
    dsc_manager *m = new_manager(64 << 20);
    const size_t capacity = 64 << 10;
    dsc_cache *c = NULL;
    STATUS(dsc_cache_new(m, 0, &c), DSC_INVALID);
    STATUS(dsc_cache_new(m, capacity, NULL), DSC_INVALID);
    STATUS(dsc_cache_new(m, capacity, &c), DSC_OK);
    CHECK(c != NULL);

    unsigned char val[2048];
    long hits = 0, misses = 0, wrong = 0, over = 0;
    size_t max_held = 0;
    for (unsigned k = 0; k < 3000; k++) {
        make_value(k, val);
        STATUS(dsc_cache_put(c, &k, sizeof k, val, value_len(k)), DSC_OK);
        /* Capacity holds when put returns (± one value). The cache is this
         * manager's only user, so the manager's bytes are the cache's. */
        size_t held = stats_of(m).discardable_bytes;
        if (held > max_held) max_held = held;
        if (held > capacity + 4096) over++;
        /* Look up a recent key and an old one; check every hit's bytes. */
        unsigned probes[2] = {k - (k % 5), k / 3};
        for (int q = 0; q < 2; q++) {
            unsigned key = probes[q];
            const void *v = (const void *)1;
            size_t n = 1;
            dsc_cache_ref *ref = (dsc_cache_ref *)1;
            dsc_status s = dsc_cache_get(c, &key, sizeof key, &v, &n, &ref);
            if (s == DSC_OK) {
                hits++;
                if (!value_ok(key, v, n)) wrong++;
                dsc_cache_release(ref);
            } else {
                misses++;
                CHECK(s == DSC_NOT_FOUND);
                CHECK(v == NULL && n == 0 && ref == NULL);
            }
        }
    }
    printf("cache: %ld hits, %ld misses, %ld wrong, max %zu bytes held of %zu\n", hits, misses, wrong, max_held,
           capacity);
    CHECK(wrong == 0);
    CHECK(hits > 0);
    CHECK(misses > 0);
    CHECK(over == 0);
    CHECK(max_held > capacity / 2);

    /* A value larger than the whole capacity can never be kept. */
    unsigned char *big = calloc(1, capacity * 2);
    unsigned bigkey = 999999;
    STATUS(dsc_cache_put(c, &bigkey, sizeof bigkey, big, capacity * 2), DSC_INVALID);
    free(big);
    dsc_cache_free(c);
    dsc_manager_free(m);
}

static void test_cache_api(void) {
    dsc_manager *m = new_manager(64 << 20);
    dsc_cache *c = NULL;
    STATUS(dsc_cache_new(m, 1 << 20, &c), DSC_OK);
    const void *tv; /* scratch outputs of lookups that must miss */
    size_t tn;
    dsc_cache_ref *tr;

    STATUS(dsc_cache_get(c, "k", 1, &tv, &tn, &tr), DSC_NOT_FOUND);
    STATUS(dsc_cache_put(c, "k", 1, "one", 3), DSC_OK);
    const void *v1;
    size_t n1;
    dsc_cache_ref *r1;
    STATUS(dsc_cache_get(c, "k", 1, &v1, &n1, &r1), DSC_OK);
    CHECK(n1 == 3 && memcmp(v1, "one", 3) == 0);

    /* A ref survives a new put of the same key, its removal, and the
     * cache's and the manager's free. */
    STATUS(dsc_cache_put(c, "k", 1, "two!", 4), DSC_OK);
    const void *v2;
    size_t n2;
    dsc_cache_ref *r2;
    STATUS(dsc_cache_get(c, "k", 1, &v2, &n2, &r2), DSC_OK);
    CHECK(n2 == 4 && memcmp(v2, "two!", 4) == 0);
    CHECK(memcmp(v1, "one", 3) == 0);
    STATUS(dsc_cache_remove(c, "k", 1), DSC_OK);
    STATUS(dsc_cache_remove(c, "k", 1), DSC_NOT_FOUND);
    STATUS(dsc_cache_get(c, "k", 1, &tv, &tn, &tr), DSC_NOT_FOUND);
    CHECK(memcmp(v1, "one", 3) == 0);
    CHECK(memcmp(v2, "two!", 4) == 0);
    dsc_cache_release(r1);

    /* Empty keys and values; NULL pointers with zero lengths. */
    dsc_cache_ref *r;
    const void *v;
    size_t n;
    STATUS(dsc_cache_put(c, NULL, 0, "empty key", 9), DSC_OK);
    STATUS(dsc_cache_put(c, "ev", 2, NULL, 0), DSC_OK);
    STATUS(dsc_cache_get(c, "", 0, &v, &n, &r), DSC_OK);
    CHECK(n == 9 && memcmp(v, "empty key", 9) == 0);
    dsc_cache_release(r);
    STATUS(dsc_cache_get(c, "ev", 2, &v, &n, &r), DSC_OK);
    CHECK(n == 0);
    dsc_cache_release(r);

    /* A discarded value is NOT_FOUND; a held one survives the reclaim. */
    STATUS(dsc_cache_put(c, "held", 4, "HELD", 4), DSC_OK);
    STATUS(dsc_cache_put(c, "cold", 4, "COLD", 4), DSC_OK);
    const void *vh;
    size_t nh;
    dsc_cache_ref *rh;
    STATUS(dsc_cache_get(c, "held", 4, &vh, &nh, &rh), DSC_OK);
    CHECK(dsc_reclaim(m, SIZE_MAX) > 0);
    STATUS(dsc_cache_get(c, "cold", 4, &tv, &tn, &tr), DSC_NOT_FOUND);
    CHECK(tv == NULL && tn == 0 && tr == NULL);
    STATUS(dsc_cache_remove(c, "cold", 4), DSC_NOT_FOUND);
    CHECK(nh == 4 && memcmp(vh, "HELD", 4) == 0);
    STATUS(dsc_cache_get(c, "held", 4, &v, &n, &r), DSC_OK);
    CHECK(v == vh && n == 4);
    dsc_cache_release(r);

    /* NULL arguments. */
    STATUS(dsc_cache_put(NULL, "k", 1, "v", 1), DSC_INVALID);
    STATUS(dsc_cache_put(c, NULL, 1, "v", 1), DSC_INVALID);
    STATUS(dsc_cache_put(c, "k", 1, NULL, 1), DSC_INVALID);
    STATUS(dsc_cache_get(NULL, "k", 1, &v, &n, &r), DSC_INVALID);
    STATUS(dsc_cache_get(c, NULL, 1, &v, &n, &r), DSC_INVALID);
    STATUS(dsc_cache_get(c, "k", 1, NULL, &n, &r), DSC_INVALID);
    STATUS(dsc_cache_get(c, "k", 1, &v, NULL, &r), DSC_INVALID);
    STATUS(dsc_cache_get(c, "k", 1, &v, &n, NULL), DSC_INVALID);
    STATUS(dsc_cache_remove(NULL, "k", 1), DSC_INVALID);
    STATUS(dsc_cache_remove(c, NULL, 1), DSC_INVALID);
    dsc_cache_release(NULL);
    dsc_cache_free(NULL);

    dsc_cache_free(c);
    dsc_manager_free(m);
    /* Hits outlive the cache and the manager. */
    CHECK(memcmp(vh, "HELD", 4) == 0);
    CHECK(memcmp(v2, "two!", 4) == 0);
    dsc_cache_release(rh);
    dsc_cache_release(r2);

    /* A cache in the global manager. */
    STATUS(dsc_cache_new(NULL, 1 << 20, &c), DSC_OK);
    STATUS(dsc_cache_put(c, "g", 1, "global", 6), DSC_OK);
    STATUS(dsc_cache_get(c, "g", 1, &v, &n, &r), DSC_OK);
    CHECK(n == 6 && memcmp(v, "global", 6) == 0);
    dsc_cache_release(r);
    dsc_cache_free(c);
}

/* ------------------------------------------------------------------------ */
/* The global manager: configured once, before first use. Runs first. */

static void test_global(void) {
    dsc_config cfg;
    dsc_config_init(&cfg);
    cfg.limit = 0;
    STATUS(dsc_global_init(&cfg), DSC_INVALID);
    cfg.limit = 32 << 20;
    cfg.policy = DSC_POLICY_LRU;
    STATUS(dsc_global_init(&cfg), DSC_OK);
    STATUS(dsc_global_init(&cfg), DSC_ALREADY_STARTED);
    STATUS(dsc_global_init(NULL), DSC_ALREADY_STARTED);
    dsc_manager *g = dsc_global();
    CHECK(g != NULL);
    CHECK(dsc_global() == g);
    CHECK(stats_of(g).limit == 32 << 20);
    size_t before = stats_of(g).allocations;
    dsc_handle *h = dsc_alloc(NULL, 1000);
    CHECK(h != NULL);
    CHECK(stats_of(g).allocations == before + 1);
    dsc_manager_free(g); /* a no-op */
    CHECK(dsc_global() == g);
    STATUS(dsc_write(h, 0, "g", 1), DSC_OK);
    CHECK(dsc_reclaim(g, SIZE_MAX) >= 1000);
    CHECK(dsc_is_discarded(h));
    dsc_free(h);
    CHECK(stats_of(g).allocations == before);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    test_global();
    test_status_names();
    test_config_and_managers();
    test_stats_prefix();
    test_alloc_pin_unpin();
    test_offset_ops();
    test_discard_through_each_op();
    test_deferred_free();
    test_handles_outlive_manager();
    test_misuse_aborts();
    test_threads_race_reclaim();
    test_cache_api();
    test_cache_tight_capacity();
    printf("%d passed, %d failed\n", atomic_load(&passed), atomic_load(&failed));
    return atomic_load(&failed) == 0 ? 0 : 1;
}

/*
 * An image-tile cache in C: a viewer pans over a 64 x 64 map of 64 x 64
 * grey tiles (4 KiB each) that are expensive to render. Rendered tiles go
 * into a dsc_cache that holds at most 96 of them; the frame buffer itself
 * is a dsc_handle. Halfway through, memory pressure (dsc_reclaim, as the
 * manager thread would do under a cgroup limit) discards every unpinned
 * tile; the viewer just renders them again. Every tile drawn is checked.
 *
 * Build (README.md, "C and C++"), after `bash capi/install.sh /usr/local`:
 *   cc -std=c11 -O2 examples/c/tile_cache.c $(pkg-config --cflags --libs discardable) -o tile_cache
 * or straight from the build tree:
 *   cc -std=c11 -O2 -Iinclude examples/c/tile_cache.c -Ltarget/release -ldiscardable_capi \
 *      -Wl,-rpath,$PWD/target/release -o tile_cache
 */
#include <discardable.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { TILE = 64, MAP = 64, VIEW = 4, CACHED_TILES = 96 };

static unsigned long renders;

/* The expensive part: the grey level of each pixel of tile (tx, ty). */
static void render(unsigned tx, unsigned ty, unsigned char *px) {
    renders++;
    for (unsigned y = 0; y < TILE; y++)
        for (unsigned x = 0; x < TILE; x++) px[y * TILE + x] = (unsigned char)((tx * 7 + ty * 13) ^ (x + y));
}

/* The tile from the cache, rendered (and cached) on a miss; copied into
 * the frame. Returns 0 if its bytes are wrong. */
static int draw(dsc_cache *cache, dsc_handle *frame, unsigned tx, unsigned ty, unsigned slot) {
    uint32_t key[2] = {tx, ty};
    const void *px;
    size_t n;
    dsc_cache_ref *hit;
    unsigned char fresh[TILE * TILE];
    if (dsc_cache_get(cache, key, sizeof key, &px, &n, &hit) != DSC_OK) {
        render(tx, ty, fresh);
        dsc_cache_put(cache, key, sizeof key, fresh, sizeof fresh);
        px = fresh;
        n = sizeof fresh;
        hit = NULL;
    }
    unsigned char expect[TILE * TILE];
    unsigned long before = renders;
    render(tx, ty, expect);
    renders = before; /* the check is not a render */
    int ok = n == sizeof expect && memcmp(px, expect, n) == 0;
    /* Into the frame buffer; if pressure took it, start a new frame. */
    ok &= dsc_write(frame, (size_t)slot * TILE * TILE, px, n) != DSC_OUT_OF_RANGE;
    dsc_cache_release(hit);
    return ok;
}

int main(void) {
    dsc_config cfg;
    dsc_config_init(&cfg);
    cfg.limit = 8 << 20;
    cfg.policy = DSC_POLICY_S3FIFO;
    dsc_manager *m;
    dsc_status s = dsc_manager_new(&cfg, &m);
    if (s != DSC_OK) {
        fprintf(stderr, "dsc_manager_new: %s\n", dsc_status_str(s));
        return 1;
    }
    dsc_cache *cache;
    if ((s = dsc_cache_new(m, CACHED_TILES * TILE * TILE, &cache)) != DSC_OK) {
        fprintf(stderr, "dsc_cache_new: %s\n", dsc_status_str(s));
        return 1;
    }
    dsc_handle *frame = dsc_alloc(m, VIEW * VIEW * TILE * TILE);

    unsigned long drawn = 0, wrong = 0, lost_frames = 0, discarded = 0;
    /* Pan right and back twice over one band of the map: tiles come back. */
    for (unsigned step = 0; step < 4 * (MAP - VIEW); step++) {
        unsigned pos = step % (2 * (MAP - VIEW));
        unsigned x0 = pos < MAP - VIEW ? pos : 2 * (MAP - VIEW) - pos;
        if (step == 2 * (MAP - VIEW)) discarded = dsc_reclaim(m, SIZE_MAX); /* pressure */
        if (dsc_is_discarded(frame)) {
            lost_frames++;
            dsc_free(frame);
            frame = dsc_alloc(m, VIEW * VIEW * TILE * TILE);
        }
        for (unsigned dy = 0; dy < VIEW; dy++)
            for (unsigned dx = 0; dx < VIEW; dx++) {
                drawn++;
                wrong += !draw(cache, frame, x0 + dx, 10 + dy, dy * VIEW + dx);
            }
    }
    dsc_stats st;
    st.struct_size = sizeof st;
    dsc_manager_stats(m, &st);
    printf("tiles drawn %lu, rendered %lu (%.0f%% from the cache), wrong %lu\n", drawn, renders,
           100.0 * (double)(drawn - renders) / (double)drawn, wrong);
    printf("pressure discarded %zu bytes (%lu frame buffers lost); %zu bytes held now\n", (size_t)discarded,
           lost_frames, st.discardable_bytes);
    dsc_free(frame);
    dsc_cache_free(cache);
    dsc_manager_free(m);
    /* Honest about itself: wrong tiles, no cache hits, or no pressure fail. */
    return wrong == 0 && renders < drawn && discarded > 0 ? 0 : 1;
}

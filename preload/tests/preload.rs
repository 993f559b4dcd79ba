//! Real programs under `LD_PRELOAD=libdiscardable_malloc.so`: Python with
//! `PYTHONMALLOC=malloc` building big dicts, lists and strings across
//! threads; a C program (built here with gcc) that churns random sizes,
//! `calloc`, aligned allocations and `realloc` growth across threads, frees
//! half of its blocks on other threads, forks while other threads allocate,
//! and frees blocks of exited threads; a C program that checks the
//! library's documented API semantics; and GNU coreutils.
//!
//! Each program's output is compared with a run of the same program on the
//! system allocator, and the statistics line that `DISCARDABLE_STATS=1`
//! makes the library print at exit proves that the library served it.
//!
//! Missing tools (`gcc`, `python3`): with `CI=true` the test fails with a
//! clear message; otherwise it prints why it skips and passes.
//!
//! The library: `DISCARDABLE_MALLOC_SO` if set; else the tests run
//! `cargo build -p discardable-malloc` with this test binary's profile and
//! target directory first (Cargo does not reliably build, or copy up to
//! `<target>/<profile>/`, a cdylib-only library for its own integration
//! tests; when the library is fresh this build is a no-op).

use std::env;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The library's file name.
const SO_NAME: &str = "libdiscardable_malloc.so";
/// How long one program may run before it is killed (a deadlock).
const TIMEOUT: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------
// Locating (or building) the library

fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(locate_or_build)
}

fn locate_or_build() -> PathBuf {
    if let Some(path) = env::var_os("DISCARDABLE_MALLOC_SO") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "DISCARDABLE_MALLOC_SO={} is not a file", path.display());
        return path;
    }
    build_library()
}

/// Builds the cdylib with the profile (and target) of this test binary
/// into the same target directory, and returns its path. Cargo does not
/// reliably build a cdylib-only library for its package's integration
/// tests, and a copy left by an earlier `cargo build` may be stale; when it
/// is fresh, this build is a no-op. (Cargo holds no lock on the target
/// directory while tests run.)
fn build_library() -> PathBuf {
    let exe = env::current_exe().expect("the test binary's path");
    // <target>[/<triple>]/<profile>/deps/preload-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("the profile directory");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("the profile's name").to_owned();
    // Cargo marks the target directory's root with CACHEDIR.TAG.
    let mut target_dir = profile_dir.parent().expect("the target directory").to_path_buf();
    let mut triple = None;
    if !target_dir.join("CACHEDIR.TAG").is_file() {
        if let Some(root) = target_dir.parent().filter(|root| root.join("CACHEDIR.TAG").is_file()) {
            triple = target_dir.file_name().map(|n| n.to_owned());
            target_dir = root.to_path_buf();
        }
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "discardable-malloc", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    if let Some(triple) = &triple {
        cmd.arg("--target").arg(triple);
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let start = Instant::now();
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "building {SO_NAME} failed ({}): {cmd:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let so = profile_dir.join(SO_NAME);
    assert!(so.is_file(), "{cmd:?} did not produce {}", so.display());
    eprintln!("{} is up to date ({:.2?})", so.display(), start.elapsed());
    so
}

// ---------------------------------------------------------------------------
// Tools and running programs

/// `name` on `PATH`; if absent, fails under `CI=true` and otherwise prints
/// why the test skips and returns `None`.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let found = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| is_executable(p)))
        .unwrap_or_default();
    if found.is_none() {
        if env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: `{name}` is not on PATH; CI must provide it (Debian: apt-get install gcc python3)");
        }
        eprintln!("SKIPPED {test}: `{name}` is not on PATH (with CI=true this fails)");
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A finished program.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cmd` with `input` on stdin, killing it after [`TIMEOUT`].
fn run(what: &str, cmd: &mut Command, input: Option<Vec<u8>>) -> Run {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let writer = input.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        thread::spawn(move || {
            // A program that stops reading early closes the pipe: not ours
            // to judge here.
            let _ = pipe.write_all(&data);
        })
    });
    let out = drain(child.stdout.take().expect("stdout pipe"));
    let err = drain(child.stderr.take().expect("stderr pipe"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!("{what}: still running after {TIMEOUT:?} (deadlock?), killed; stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let run =
        Run { status, stdout: out.join().expect("stdout reader"), stderr: err.join().expect("stderr reader"), elapsed };
    eprintln!("{what}: {} in {:.2?}", run.status, run.elapsed);
    run
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// `cmd` on the system allocator.
fn plain(mut cmd: Command) -> Command {
    cmd.env_remove("LD_PRELOAD").env_remove("DISCARDABLE_STATS");
    cmd
}

/// `cmd` on the library, printing its statistics at exit.
fn preloaded(mut cmd: Command) -> Command {
    cmd.env("LD_PRELOAD", library()).env("DISCARDABLE_STATS", "1");
    cmd
}

fn assert_success(what: &str, run: &Run) {
    assert!(run.status.success(), "{what}: {}\nstdout:\n{}\nstderr:\n{}", run.status, run.stdout, run.stderr);
}

/// One `discardable-malloc: ...` statistics line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    mapped: u64,
    in_use: u64,
    retained: u64,
    allocs: u64,
}

fn parse_stats(line: &str) -> Option<Stats> {
    let mut fields = line.strip_prefix("discardable-malloc: ")?.split(' ');
    let mut field = |name: &str| fields.next()?.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok();
    let stats = Stats {
        mapped: field("mapped")?,
        in_use: field("in_use")?,
        retained: field("retained")?,
        allocs: field("allocs")?,
    };
    fields.next().is_none().then_some(stats)
}

/// The single statistics line of a preloaded run, checked for sanity and
/// for at least `min_allocs` allocations.
fn served(what: &str, run: &Run, min_allocs: u64) -> Stats {
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("discardable-malloc:")).collect();
    assert_eq!(lines.len(), 1, "{what}: expected exactly one statistics line in stderr:\n{}", run.stderr);
    let stats = parse_stats(lines[0]).unwrap_or_else(|| panic!("{what}: malformed statistics line {:?}", lines[0]));
    eprintln!("{what}: {stats:?}");
    assert!(stats.allocs >= min_allocs, "{what}: only {} allocations served, expected >= {min_allocs}", stats.allocs);
    assert!(stats.mapped > 0 && stats.in_use <= stats.mapped && stats.retained <= stats.mapped, "{what}: {stats:?}");
    stats
}

fn scratch_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("discardable-preload");
    fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Compiles `source` with `gcc <opt> -pthread` into the scratch directory.
fn compile_c(gcc: &Path, name: &str, opt: &[&str], source: &str) -> PathBuf {
    let dir = scratch_dir();
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    fs::write(&src, source).expect("writing the C source");
    let mut cmd = plain(Command::new(gcc));
    cmd.args(opt).args(["-pthread", "-std=gnu11", "-Wall", "-o"]).arg(&exe).arg(&src);
    let build = run(&format!("gcc {name}"), &mut cmd, None);
    assert_success(&format!("gcc {name}"), &build);
    exe
}

// ---------------------------------------------------------------------------
// a. Python

const PYTHON_SCRIPT: &str = r#"
import threading, zlib

def work(seed, out):
    rng = seed
    d = {}
    items = []
    texts = []
    for i in range(40000):
        rng = (rng * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        r = rng >> 33
        key = "k%d-%d" % (seed, r % 30000)
        d[key] = [r, str(r) * (1 + r % 9), (key, i)]
        if i % 3 == 0:
            items.append(("x" * (r % 500)) + key)
        if i % 500 == 499:
            texts.append("|".join(items[-200:]))
            for k in list(d)[:300]:
                del d[k]
            del items[: len(items) // 3]
    big = bytearray(b"%d" % seed) * (4 << 20)
    crc = zlib.crc32(big)
    del big
    for k, v in d.items():
        crc = zlib.crc32(("%s=%r" % (k, v)).encode(), crc)
    for s in items:
        crc = zlib.crc32(s.encode(), crc)
    for s in texts:
        crc = zlib.crc32(s.encode(), crc)
    out[seed] = (crc, len(d), len(items), sum(len(t) for t in texts))

out = {}
threads = [threading.Thread(target=work, args=(s, out)) for s in range(1, 5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
huge = bytes(range(256)) * (160 << 10)
total = zlib.crc32(huge)
del huge
for s in sorted(out):
    print(s, *out[s])
    total = zlib.crc32(repr(out[s]).encode(), total)
print("checksum", total)
"#;

#[test]
fn python_with_pythonmalloc_malloc() {
    let Some(python) = tool("python3", "python_with_pythonmalloc_malloc") else { return };
    // Resolve wrappers (pyenv shims are shell scripts that would run, and
    // print statistics, under the preload too) to the interpreter itself.
    let mut which = plain(Command::new(&python));
    which.args(["-c", "import sys; print(sys.executable)"]);
    let which = run("python3 sys.executable", &mut which, None);
    assert_success("python3 sys.executable", &which);
    let python = PathBuf::from(which.stdout.trim());
    assert!(python.is_file(), "sys.executable {python:?} is not a file");

    let command = || {
        let mut cmd = Command::new(&python);
        cmd.args(["-c", PYTHON_SCRIPT]).env("PYTHONMALLOC", "malloc").env("PYTHONHASHSEED", "0");
        cmd
    };
    let base = run("python (system malloc)", &mut plain(command()), None);
    assert_success("python (system malloc)", &base);
    assert!(base.stdout.contains("checksum "), "unexpected output:\n{}", base.stdout);
    assert!(!base.stderr.contains("discardable-malloc:"), "the baseline must not be preloaded");

    let ours = run("python (discardable-malloc)", &mut preloaded(command()), None);
    assert_success("python (discardable-malloc)", &ours);
    assert_eq!(ours.stdout, base.stdout, "python's output differs under the library");
    served("python", &ours, 200_000);
}

// ---------------------------------------------------------------------------
// b. A C program churning across threads

const CHURN_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 4
#define WAVES 2
#define ROUNDS 25000
#define SLOTS 512
#define SURVIVORS 64
#define FORKS 16

typedef struct block {
    unsigned char *p;
    size_t size;
    uint32_t seed;
    struct block *next;
} block;

typedef struct {
    pthread_mutex_t lock;
    block *head;
} queue;

typedef struct {
    unsigned long allocs, local_frees, remote_frees, sent;
    unsigned long long bytes, remote_bytes;
} counters;

static queue queues[THREADS];
static counters results[WAVES][THREADS];
static block *survivors[WAVES][THREADS][SURVIVORS];
static pthread_barrier_t barrier;
static atomic_ulong errors;
static int wave;

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fail(const char *what, size_t size) {
    atomic_fetch_add(&errors, 1);
    fprintf(stderr, "FAIL: %s (size %zu)\n", what, size);
}

static unsigned char pat(uint32_t seed, size_t i) { return (unsigned char)(seed + i * 131 + (i >> 8)); }

/* Every byte of small blocks; the ends and one byte per KiB of big ones. */
static void fill(unsigned char *p, size_t n, uint32_t seed) {
    if (n <= 65536) {
        for (size_t i = 0; i < n; i++) p[i] = pat(seed, i);
        return;
    }
    for (size_t i = 0; i < 4096; i++) p[i] = pat(seed, i);
    for (size_t i = 4096; i < n - 4096; i += 1024) p[i] = pat(seed, i);
    for (size_t i = n - 4096; i < n; i++) p[i] = pat(seed, i);
}

static int intact(const unsigned char *p, size_t n, uint32_t seed) {
    if (n <= 65536) {
        for (size_t i = 0; i < n; i++) if (p[i] != pat(seed, i)) return 0;
        return 1;
    }
    for (size_t i = 0; i < 4096; i++) if (p[i] != pat(seed, i)) return 0;
    for (size_t i = 4096; i < n - 4096; i += 1024) if (p[i] != pat(seed, i)) return 0;
    for (size_t i = n - 4096; i < n; i++) if (p[i] != pat(seed, i)) return 0;
    return 1;
}

static size_t pick_size(uint64_t x) {
    unsigned k = x % 100;
    uint64_t r = x >> 7;
    if (k < 60) return 1 + r % 256;
    if (k < 85) return 257 + r % (16384 - 256);
    if (k < 95) return 16385 + r % (131072 - 16384);
    if (k < 99) return 131073 + r % (524288 - 131072);
    return 524289 + r % (1048576 - 524288);
}

static block *make(uint64_t *rng, counters *c) {
    uint64_t x = next(rng);
    size_t size = pick_size(x);
    unsigned kind = (x >> 40) % 10;
    block *b = malloc(sizeof *b);
    if (!b) { fail("malloc(descriptor)", sizeof *b); abort(); }
    b->seed = (uint32_t)(x >> 8);
    b->next = NULL;
    unsigned char *p = NULL;
    if (kind <= 5) {
        p = malloc(size);
        if (p && (uintptr_t)p % 16) fail("malloc alignment", size);
    } else if (kind == 6) {
        p = (x >> 50) & 1 ? calloc(size, 1) : calloc(1, size);
        if (p) for (size_t i = 0; i < size; i++) if (p[i]) { fail("calloc not zeroed", size); break; }
    } else if (kind == 7) {
        size_t align = (size_t)8 << ((x >> 44) % 10); /* 8 .. 4096 */
        void *q = NULL;
        int rc = posix_memalign(&q, align, size);
        if (rc) { fail("posix_memalign", size); abort(); }
        if ((uintptr_t)q % align) fail("posix_memalign alignment", size);
        p = q;
    } else if (kind == 8) {
        size_t align = (size_t)16 << ((x >> 44) % 9); /* 16 .. 4096 */
        size = (size + align - 1) / align * align;
        p = aligned_alloc(align, size);
        if (p && (uintptr_t)p % align) fail("aligned_alloc alignment", size);
    } else {
        size_t a = size / 4 + 1, m = size / 2 + 1;
        p = malloc(a);
        if (!p) { fail("malloc", a); abort(); }
        fill(p, a, b->seed);
        p = realloc(p, m);
        if (!p) { fail("realloc", m); abort(); }
        if (!intact(p, a, b->seed)) fail("realloc lost contents", m);
        fill(p, m, b->seed);
        p = realloc(p, size);
        if (!p) { fail("realloc", size); abort(); }
        if (!intact(p, m, b->seed)) fail("realloc lost contents", size);
        if ((uintptr_t)p % 16) fail("realloc alignment", size);
    }
    if (!p) { fail("allocation returned NULL", size); abort(); }
    if (malloc_usable_size(p) < size) fail("malloc_usable_size too small", size);
    fill(p, size, b->seed);
    b->p = p;
    b->size = size;
    c->allocs++;
    c->bytes += size;
    return b;
}

static void release(block *b) {
    if (!intact(b->p, b->size, b->seed)) fail("pattern overwritten", b->size);
    free(b->p);
    free(b);
}

static void send_to(int to, block *b) {
    pthread_mutex_lock(&queues[to].lock);
    b->next = queues[to].head;
    queues[to].head = b;
    pthread_mutex_unlock(&queues[to].lock);
}

static void receive(int id, counters *c) {
    pthread_mutex_lock(&queues[id].lock);
    block *b = queues[id].head;
    queues[id].head = NULL;
    pthread_mutex_unlock(&queues[id].lock);
    while (b) {
        block *next = b->next;
        c->remote_frees++;
        c->remote_bytes += b->size;
        release(b);
        b = next;
    }
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t rng = 0x5eed0000ULL + (uint64_t)wave * 1000 + (uint64_t)id;
    counters *c = &results[wave][id];
    block *slots[SLOTS] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t x = next(&rng);
        int s = (int)(x % SLOTS);
        if (slots[s]) {
            /* Half of the blocks are freed by another thread. */
            if ((x >> 20) & 1) { send_to((id + 1) % THREADS, slots[s]); c->sent++; }
            else { release(slots[s]); c->local_frees++; }
        }
        slots[s] = make(&rng, c);
        if ((r & 31) == 0) receive(id, c);
    }
    for (int s = 0; s < SLOTS; s++) {
        if (!slots[s]) continue;
        /* Some blocks outlive their thread: main frees them later. */
        if (s < SURVIVORS) survivors[wave][id][s] = slots[s];
        else if (s & 1) { send_to((id + 1) % THREADS, slots[s]); c->sent++; }
        else { release(slots[s]); c->local_frees++; }
    }
    pthread_barrier_wait(&barrier);
    receive(id, c);
    return NULL;
}

static atomic_int stop_churn;

static void *churn(void *arg) {
    uint64_t rng = (uint64_t)(intptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load(&stop_churn)) {
        uint64_t x = next(&rng);
        int s = (int)(x % 64);
        free(keep[s]);
        keep[s] = malloc(1 + (x >> 8) % 20000);
        if (!keep[s]) { fail("churn malloc", 0); abort(); }
    }
    for (int s = 0; s < 64; s++) free(keep[s]);
    return NULL;
}

/* Fork while other threads allocate: the child must be able to allocate. */
static int fork_while_churning(void) {
    pthread_t t[2];
    for (intptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, (void *)(i + 77));
    int ok = 0;
    for (int f = 0; f < FORKS; f++) {
        pid_t pid = fork();
        if (pid < 0) { fail("fork", 0); break; }
        if (pid == 0) {
            alarm(30);
            uint64_t rng = 99 + f;
            void *v[256];
            for (int i = 0; i < 256; i++) {
                size_t n = pick_size(next(&rng));
                v[i] = malloc(n);
                if (!v[i]) _exit(2);
                memset(v[i], i, n);
            }
            for (int i = 0; i < 256; i++) free(v[i]);
            _exit(0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
        else fail("forked child failed", (size_t)status);
        usleep(1000);
    }
    atomic_store(&stop_churn, 1);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    return ok;
}

int main(void) {
    alarm(200);
    for (int i = 0; i < THREADS; i++) pthread_mutex_init(&queues[i].lock, NULL);
    unsigned long survived = 0;
    for (wave = 0; wave < WAVES; wave++) {
        pthread_barrier_init(&barrier, NULL, THREADS);
        pthread_t t[THREADS];
        for (intptr_t i = 0; i < THREADS; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)i)) { fail("pthread_create", 0); return 1; }
        for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
        /* Free the previous wave's survivors: their threads are long gone. */
        if (wave > 0)
            for (int i = 0; i < THREADS; i++)
                for (int s = 0; s < SURVIVORS; s++)
                    if (survivors[wave - 1][i][s]) { release(survivors[wave - 1][i][s]); survived++; }
    }
    for (int i = 0; i < THREADS; i++)
        for (int s = 0; s < SURVIVORS; s++)
            if (survivors[WAVES - 1][i][s]) { release(survivors[WAVES - 1][i][s]); survived++; }
    int forks = fork_while_churning();
    for (int w = 0; w < WAVES; w++)
        for (int i = 0; i < THREADS; i++) {
            counters *c = &results[w][i];
            printf("wave %d thread %d: allocs=%lu bytes=%llu local_frees=%lu sent=%lu remote_frees=%lu remote_bytes=%llu\n",
                   w, i, c->allocs, c->bytes, c->local_frees, c->sent, c->remote_frees, c->remote_bytes);
        }
    printf("survivors freed by main: %lu\n", survived);
    printf("forks ok: %d of %d\n", forks, FORKS);
    printf("errors: %lu\n", atomic_load(&errors));
    return atomic_load(&errors) ? 1 : 0;
}
"#;

#[test]
fn c_program_churning_across_threads() {
    let Some(gcc) = tool("gcc", "c_program_churning_across_threads") else { return };
    let exe = compile_c(&gcc, "churn", &["-O2"], CHURN_C);
    let base = run("churn (system malloc)", &mut plain(Command::new(&exe)), None);
    assert_success("churn (system malloc)", &base);
    assert!(base.stdout.contains("errors: 0"), "{}", base.stdout);
    let ours = run("churn (discardable-malloc)", &mut preloaded(Command::new(&exe)), None);
    assert_success("churn (discardable-malloc)", &ours);
    assert_eq!(ours.stdout, base.stdout, "the churn program's output differs under the library");
    // 2 waves x 4 threads x 25,000 blocks, each with a descriptor.
    served("churn", &ours, 400_000);
}

// ---------------------------------------------------------------------------
// The library's documented API semantics, checked from C

const API_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond); } } while (0)
#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)

int main(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    volatile size_t huge = SIZE_MAX; /* keeps gcc from judging the calls */
    void *p, *q;

    /* malloc */
    p = malloc(0);
    CHECK(p != NULL && ALIGNED(p, 16));
    q = malloc(0);
    CHECK(q != NULL && q != p);
    free(p);
    free(q);
    free(NULL);
    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(huge / 2 + 1) == NULL && errno == ENOMEM);
    for (size_t n = 1; n <= (1u << 22); n = n * 3 / 2 + 1) {
        unsigned char *b = malloc(n);
        CHECK(b != NULL && ALIGNED(b, 16));
        size_t usable = malloc_usable_size(b);
        CHECK(usable >= n);
        memset(b, 0xab, usable);
        free(b);
    }
    CHECK(malloc_usable_size(NULL) == 0);

    /* calloc: overflow, and zeroes even on recycled dirty memory */
    errno = 0;
    CHECK(calloc(huge / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(huge >> 24, huge >> 24) == NULL && errno == ENOMEM);
    for (size_t n = 1; n <= (1u << 21); n = n * 2 + 7) {
        for (int round = 0; round < 4; round++) {
            unsigned char *d = malloc(n);
            CHECK(d != NULL);
            memset(d, 0xff, n);
            free(d);
            unsigned char *z = calloc(n, 1);
            CHECK(z != NULL);
            for (size_t i = 0; i < n; i++) if (z[i]) { CHECK(!"calloc returned dirty memory"); break; }
            free(z);
        }
    }

    /* realloc */
    p = realloc(NULL, 100);
    CHECK(p != NULL);
    memset(p, 7, 100);
    errno = 0;
    q = realloc(p, huge);
    CHECK(q == NULL && errno == ENOMEM);
    CHECK(((unsigned char *)p)[99] == 7); /* still valid and unchanged */
    for (size_t n = 100; n < (8u << 20); n *= 3) {
        p = realloc(p, n);
        CHECK(p != NULL && ALIGNED(p, 16) && ((unsigned char *)p)[99] == 7);
    }
    p = realloc(p, 50);
    CHECK(p != NULL && ((unsigned char *)p)[49] == 7);
    /* realloc(p, 0) frees p and returns NULL, as glibc */
    CHECK(realloc(p, 0) == NULL);

    /* reallocarray */
    errno = 0;
    CHECK(reallocarray(NULL, huge, 2) == NULL && errno == ENOMEM);
    p = reallocarray(NULL, 10, 10);
    CHECK(p != NULL && malloc_usable_size(p) >= 100);
    free(p);

    /* posix_memalign */
    p = (void *)0x1;
    CHECK(posix_memalign(&p, 3, 10) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, sizeof(void *) / 2, 10) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 64, huge) == ENOMEM && p == (void *)0x1);
    for (size_t a = sizeof(void *); a <= (4u << 20); a *= 2) {
        size_t sizes[] = {0, 1, 24, 100, 4096, 70000, 3u << 20};
        for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            CHECK(posix_memalign(&p, a, sizes[i]) == 0);
            CHECK(p != NULL && ALIGNED(p, a) && malloc_usable_size(p) >= sizes[i]);
            memset(p, 1, sizes[i]);
            free(p);
        }
    }

    /* aligned_alloc: non-power-of-two alignments are EINVAL */
    errno = 0;
    CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 10) == NULL && errno == EINVAL);
    p = aligned_alloc(4096, 10);
    CHECK(p != NULL && ALIGNED(p, 4096));
    free(p);
    p = aligned_alloc(1, 10);
    CHECK(p != NULL && ALIGNED(p, 16));
    free(p);

    /* memalign rounds the alignment up to a power of two */
    p = memalign(48, 10);
    CHECK(p != NULL && ALIGNED(p, 64));
    free(p);
    p = memalign(1u << 16, 100000);
    CHECK(p != NULL && ALIGNED(p, 1u << 16));
    free(p);
    errno = 0;
    CHECK(memalign(huge, 10) == NULL && errno == EINVAL);

    /* valloc, pvalloc */
    p = valloc(10);
    CHECK(p != NULL && ALIGNED(p, page));
    free(p);
    p = pvalloc(10);
    CHECK(p != NULL && ALIGNED(p, page) && malloc_usable_size(p) >= page);
    free(p);
    p = pvalloc(0);
    CHECK(p != NULL && ALIGNED(p, page) && malloc_usable_size(p) >= page);
    free(p);
    errno = 0;
    CHECK(pvalloc(huge - 1) == NULL && errno == ENOMEM);

    /* C library functions that allocate internally hand their blocks to free */
    char *s = strdup("discardable");
    CHECK(s != NULL && strcmp(s, "discardable") == 0);
    free(s);
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fmemopen("first line\nsecond\n", 18, "r");
    CHECK(f != NULL && getline(&line, &cap, f) == 11);
    free(line);
    fclose(f);
    char *msg = NULL;
    CHECK(asprintf(&msg, "%d-%s", 42, "x") == 4 && strcmp(msg, "42-x") == 0);
    free(msg);

    printf("failures: %d\n", failures);
    return failures ? 1 : 0;
}
"#;

#[test]
fn c_api_semantics() {
    let Some(gcc) = tool("gcc", "c_api_semantics") else { return };
    let exe = compile_c(&gcc, "api", &["-O0", "-fno-builtin"], API_C);
    let ours = run("api (discardable-malloc)", &mut preloaded(Command::new(&exe)), None);
    assert_success("api (discardable-malloc)", &ours);
    assert_eq!(ours.stdout, "failures: 0\n");
    served("api", &ours, 100);
}

/// Alignments of 32 MiB and more (the allocator's segment size) are valid
/// for `posix_memalign` (any power of two that is a multiple of
/// `sizeof(void *)`); glibc serves them.
#[test]
fn c_huge_alignment() {
    let Some(gcc) = tool("gcc", "c_huge_alignment") else { return };
    let source = r#"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    int failures = 0;
    for (size_t a = (size_t)1 << 24; a <= (size_t)1 << 27; a *= 2) {
        void *p = NULL;
        int rc = posix_memalign(&p, a, 100);
        if (rc != 0 || ((uintptr_t)p & (a - 1)) != 0) { printf("posix_memalign(%zu): rc=%d p=%p\n", a, rc, p); failures++; }
        free(p);
    }
    printf("failures: %d\n", failures);
    return failures != 0;
}
"#;
    let exe = compile_c(&gcc, "huge_align", &["-O2"], source);
    let base = run("huge_align (system malloc)", &mut plain(Command::new(&exe)), None);
    assert_success("huge_align (system malloc)", &base);
    let ours = run("huge_align (discardable-malloc)", &mut preloaded(Command::new(&exe)), None);
    assert_eq!(ours.stdout, base.stdout, "stderr:\n{}", ours.stderr);
    assert_success("huge_align (discardable-malloc)", &ours);
}

// ---------------------------------------------------------------------------
// Freed memory goes back to the OS, driven by the purge timer alone

const RSS_C: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 12000 /* about 200 MiB of 64 B .. 32 KiB blocks */
static void *blocks[N];

static long rss_mib(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) { perror("statm"); exit(3); }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE) >> 20;
}

static void *fill_all(void *arg) {
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    (void)arg;
    for (int i = 0; i < N; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t n = 64 + x % 32704;
        blocks[i] = malloc(n);
        if (!blocks[i]) { perror("malloc"); exit(2); }
        memset(blocks[i], 1, n);
    }
    return NULL;
}

static void *free_all(void *arg) {
    (void)arg;
    for (int i = 0; i < N; i++) free(blocks[i]);
    return NULL;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int state;

static void *fill_then_idle(void *arg) {
    fill_all(arg);
    pthread_mutex_lock(&lock);
    state = 1;
    pthread_cond_broadcast(&cond);
    while (state != 2) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* argv[1]: who frees the blocks, and whether their allocating thread is
   still alive. After the frees the program makes no allocator call for 1 s;
   then it prints its resident set before, at the peak and after. */
int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "local";
    pthread_t owner, freer;
    long base = rss_mib(), peak;
    if (!strcmp(mode, "local")) {
        fill_all(NULL);
        peak = rss_mib();
        free_all(NULL);
    } else if (!strcmp(mode, "owner-exited")) {
        pthread_create(&owner, NULL, fill_all, NULL);
        pthread_join(owner, NULL);
        peak = rss_mib();
        free_all(NULL);
    } else if (!strcmp(mode, "owner-idle")) {
        pthread_create(&owner, NULL, fill_then_idle, NULL);
        pthread_mutex_lock(&lock);
        while (state != 1) pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        peak = rss_mib();
        pthread_create(&freer, NULL, free_all, NULL);
        pthread_join(freer, NULL);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    sleep(1);
    long after = rss_mib();
    if (!strcmp(mode, "owner-idle")) {
        pthread_mutex_lock(&lock);
        state = 2;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
        pthread_join(owner, NULL);
    }
    printf("base=%ld peak=%ld after=%ld\n", base, peak, after);
    return 0;
}
"#;

/// Runs the RSS program in `mode` under the library and checks that, 1 s
/// after everything was freed (with no allocator call since), the resident
/// set is back within 64 MiB of where it started (the issue's goal).
fn memory_goes_back(test: &str, mode: &str) {
    let Some(gcc) = tool("gcc", test) else { return };
    let exe = compile_c(&gcc, &format!("rss-{mode}"), &["-O2"], RSS_C);
    let base = run(&format!("rss {mode} (system malloc)"), plain(Command::new(&exe)).arg(mode), None);
    assert_success("rss (system malloc)", &base);
    eprintln!("rss {mode} (system malloc): {}", base.stdout.trim());
    let what = format!("rss {mode} (discardable-malloc)");
    let ours = run(&what, preloaded(Command::new(&exe)).arg(mode), None);
    assert_success(&what, &ours);
    let stats = served(&what, &ours, N_RSS_BLOCKS);
    let mib: Vec<i64> =
        ours.stdout.split_whitespace().filter_map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok())).collect();
    let [base_mib, peak_mib, after_mib] = mib[..] else { panic!("{what}: unexpected output {:?}", ours.stdout) };
    eprintln!("{what}: base={base_mib} MiB peak={peak_mib} MiB after={after_mib} MiB");
    assert!(peak_mib - base_mib >= 150, "{what}: the blocks were not resident: {}", ours.stdout);
    assert!(
        after_mib - base_mib <= 64,
        "{what}: 1 s after every block was freed, {after_mib} MiB are still resident (started at {base_mib} MiB, \
         peak {peak_mib} MiB); statistics at exit: in_use={} retained={}",
        stats.in_use,
        stats.retained
    );
}

/// Blocks the RSS program allocates (`N`).
const N_RSS_BLOCKS: u64 = 12_000;

/// The allocating thread frees its own blocks.
#[test]
fn c_locally_freed_memory_goes_back_to_the_os() {
    memory_goes_back("c_locally_freed_memory_goes_back_to_the_os", "local");
}

/// The allocating thread exited; the main thread frees its blocks (spans
/// abandoned, swept by the purge timer).
#[test]
fn c_memory_of_exited_threads_goes_back_to_the_os() {
    memory_goes_back("c_memory_of_exited_threads_goes_back_to_the_os", "owner-exited");
}

/// The allocating thread stays alive but idle; another thread frees all of
/// its blocks (remote frees).
#[test]
fn c_remotely_freed_memory_of_an_idle_thread_goes_back_to_the_os() {
    memory_goes_back("c_remotely_freed_memory_of_an_idle_thread_goes_back_to_the_os", "owner-idle");
}

// ---------------------------------------------------------------------------
// c. Coreutils

#[test]
fn coreutils_sort_and_ls() {
    let Some(sort) = tool("sort", "coreutils_sort_and_ls") else { return };
    let Some(ls) = tool("ls", "coreutils_sort_and_ls") else { return };
    // 200,000 deterministic lines, about 6 MB: sort splits the work across
    // threads and merges.
    let mut input = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..200_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(input, "{:016x} line {i} {}", x, "y".repeat((x % 40) as usize)).unwrap();
    }
    let sort_cmd = || {
        let mut cmd = Command::new(&sort);
        cmd.args(["--parallel=4", "-S", "2M"]).env("LC_ALL", "C");
        cmd
    };
    let base = run("sort (system malloc)", &mut plain(sort_cmd()), Some(input.clone()));
    assert_success("sort (system malloc)", &base);
    let ours = run("sort (discardable-malloc)", &mut preloaded(sort_cmd()), Some(input));
    assert_success("sort (discardable-malloc)", &ours);
    assert!(ours.stdout == base.stdout, "sort's output differs under the library");
    assert_eq!(ours.stdout.lines().count(), 200_000);
    served("sort", &ours, 10);

    let ls_cmd = || {
        let mut cmd = Command::new(&ls);
        cmd.args(["-la", "--time-style=+%s", "/usr/bin", "/usr/lib"]).env("LC_ALL", "C");
        cmd
    };
    let base = run("ls (system malloc)", &mut plain(ls_cmd()), None);
    assert_success("ls (system malloc)", &base);
    let ours = run("ls (discardable-malloc)", &mut preloaded(ls_cmd()), None);
    assert_success("ls (discardable-malloc)", &ours);
    assert_eq!(ours.stdout, base.stdout, "ls's output differs under the library");
    served("ls", &ours, 10);
}

#[test]
fn statistics_line_parses() {
    let line = "discardable-malloc: mapped=33554432 in_use=1507328 retained=0 allocs=238";
    assert_eq!(parse_stats(line), Some(Stats { mapped: 33554432, in_use: 1507328, retained: 0, allocs: 238 }));
    assert_eq!(parse_stats("discardable-malloc: mapped=1 in_use=2"), None);
}

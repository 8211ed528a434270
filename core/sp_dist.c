/* sp_dist.c - the distributed runtime of sp_dist.h: MPI when built with
 * SPECSSL_MPI, else a world-size-1 stub. Serial, main thread only. */
#include "sp_dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_log.h"

#ifdef SPECSSL_MPI
#include <mpi.h>
#endif

static int g_init;         /* sp_dist_init ran */
static int g_mpi;          /* MPI_Init was called by us */
static int g_rank, g_size = 1;
static int g_local;        /* sp_dist_set_local: behave as size 1 */
static int g_failed;       /* an agreement returned a failure */
static SpStatus g_failed_rc;
static char g_backend[320] = "none";
#ifdef SPECSSL_MPI
static int *g_counts;      /* 4 * size ints for MPI_Alltoallv (allocated at init) */
#endif

int sp_dist_rank(void) { return g_local ? 0 : g_rank; }
int sp_dist_size(void) { return g_local ? 1 : g_size; }
int sp_dist_active(void) { return g_mpi && !g_local; }
const char *sp_dist_backend(void) { return g_backend; }
int sp_dist_failed(void) { return g_failed; }
void sp_dist_set_local(int on) { g_local = on != 0; }
void sp_dist_reset(void) {
    g_failed = 0;
    g_failed_rc = SP_OK;
}

#ifdef SPECSSL_MPI
/* Started by an MPI launcher? (Open MPI, PMIx, MPICH/Hydra PMI, Slurm srun) */
static int launched_by_mpi(void) {
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (v && *v) return 1;
    if (getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE")) return 1;
    const char *nt = getenv("SLURM_NTASKS");
    if (nt && atoi(nt) > 1 && getenv("SLURM_PROCID")) return 1;
    return 0;
}
#endif

SpStatus sp_dist_init(void) {
    if (g_init) return SP_OK;
    g_init = 1;
#ifdef SPECSSL_MPI
    if (!launched_by_mpi()) {
        snprintf(g_backend, sizeof g_backend, "none (MPI build, not started by mpirun/srun)");
        return SP_OK;
    }
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            SP_FAIL(SP_EINTERNAL, "MPI_Init_thread failed");
        if (provided < MPI_THREAD_FUNNELED)
            sp_log(SP_LOG_WARN, "MPI provides thread level %d < FUNNELED; MPI calls stay on the "
                                "main thread outside OpenMP regions anyway", provided);
    }
    g_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    {
        char ver[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(ver, &len);
        ver[len < MPI_MAX_LIBRARY_VERSION_STRING ? len : MPI_MAX_LIBRARY_VERSION_STRING - 1] = '\0';
        char *nl = strpbrk(ver, ",\n");
        if (nl) *nl = '\0';
        snprintf(g_backend, sizeof g_backend, "mpi: %.250s", ver);
    }
    g_counts = malloc((size_t)4 * (size_t)g_size * sizeof(int));
    if (!g_counts) SP_FAIL(SP_ENOMEM, "out of memory (MPI exchange counts for %d ranks)", g_size);
    if (g_rank != 0) sp_log_set_level(SP_LOG_ERROR);
    return SP_OK;
#else
    return SP_OK;
#endif
}

SpStatus sp_dist_finalize(SpStatus rc) {
#ifdef SPECSSL_MPI
    if (!g_mpi) return rc;
    g_local = 0;
    if (!g_failed) rc = sp_dist_agree(rc);
    else rc = g_failed_rc;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
    g_mpi = 0;
    g_rank = 0;
    g_size = 1;
    free(g_counts);
    g_counts = NULL;
    return rc;
#else
    return rc;
#endif
}

void sp_dist_abort(int code) {
#ifdef SPECSSL_MPI
    if (g_mpi) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    exit(code);
}

SpStatus sp_dist_agree(SpStatus rc) {
    if (sp_dist_size() == 1) return rc;
    if (g_failed) return g_failed_rc;
#ifdef SPECSSL_MPI
    int who = rc != SP_OK ? g_rank : g_size;
    MPI_Allreduce(MPI_IN_PLACE, &who, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (who == g_size) return SP_OK;
    int code = (int)rc;
    MPI_Bcast(&code, 1, MPI_INT, who, MPI_COMM_WORLD);
    g_failed = 1;
    g_failed_rc = (SpStatus)code;
    if (who != g_rank && rc == SP_OK)
        sp_error_set(g_failed_rc, __FILE__, __LINE__,
                     "stopped because MPI rank %d failed (%s); its message is above", who,
                     sp_status_name(g_failed_rc));
    else if (who != g_rank)   /* failed here too, but report the lowest rank's status */
        sp_error_push(__FILE__, __LINE__, "(MPI rank %d failed as well)", who);
    return g_failed_rc;
#else
    return rc;
#endif
}

#ifdef SPECSSL_MPI
#define SP_DIST_CHUNK ((size_t)1 << 30)   /* elements per MPI call (< INT_MAX) */
#endif

void sp_dist_allreduce_sum_f(float *x, size_t n) {
#ifdef SPECSSL_MPI
    if (sp_dist_size() == 1) return;
    for (size_t o = 0; o < n; o += SP_DIST_CHUNK) {
        size_t m = n - o < SP_DIST_CHUNK ? n - o : SP_DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, x + o, (int)m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)x;
    (void)n;
#endif
}

void sp_dist_allreduce_sum_d(double *x, size_t n) {
#ifdef SPECSSL_MPI
    if (sp_dist_size() == 1) return;
    for (size_t o = 0; o < n; o += SP_DIST_CHUNK) {
        size_t m = n - o < SP_DIST_CHUNK ? n - o : SP_DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, x + o, (int)m, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)x;
    (void)n;
#endif
}

void sp_dist_allreduce_max_i(int *x, size_t n) {
#ifdef SPECSSL_MPI
    if (sp_dist_size() == 1) return;
    for (size_t o = 0; o < n; o += SP_DIST_CHUNK) {
        size_t m = n - o < SP_DIST_CHUNK ? n - o : SP_DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, x + o, (int)m, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    }
#else
    (void)x;
    (void)n;
#endif
}

void sp_dist_allgather(const void *send, size_t bytes, void *recv) {
    if (sp_dist_size() == 1) {
        if (bytes && recv != send) memmove(recv, send, bytes);
        return;
    }
#ifdef SPECSSL_MPI
    if (bytes > (size_t)INT_MAX) {
        fprintf(stderr, "sp_dist_allgather: %zu bytes per rank exceed one MPI call\n", bytes);
        sp_dist_abort(1);
    }
    MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
#endif
}

void sp_dist_allgather_u64(uint64_t v, uint64_t *out) {
    sp_dist_allgather(&v, sizeof v, out);
}

void sp_dist_alltoallv(const void *send, const size_t *send_bytes, const size_t *send_off,
                       void *recv, const size_t *recv_bytes, const size_t *recv_off) {
    if (sp_dist_size() == 1) {
        if (send_bytes[0])
            memmove((char *)recv + recv_off[0], (const char *)send + send_off[0], send_bytes[0]);
        return;
    }
#ifdef SPECSSL_MPI
    const int P = g_size;
    int *sc = g_counts, *sd = g_counts + P, *rcn = g_counts + 2 * P, *rd = g_counts + 3 * P;
    for (int i = 0; i < P; i++) {
        if (send_bytes[i] > (size_t)INT_MAX || send_off[i] > (size_t)INT_MAX ||
            recv_bytes[i] > (size_t)INT_MAX || recv_off[i] > (size_t)INT_MAX) {
            fprintf(stderr, "sp_dist_alltoallv: exchange larger than 2 GiB per rank\n");
            sp_dist_abort(1);
        }
        sc[i] = (int)send_bytes[i];
        sd[i] = (int)send_off[i];
        rcn[i] = (int)recv_bytes[i];
        rd[i] = (int)recv_off[i];
    }
    MPI_Alltoallv(send, sc, sd, MPI_BYTE, recv, rcn, rd, MPI_BYTE, MPI_COMM_WORLD);
#endif
}

void sp_dist_bcast(void *buf, size_t bytes, int root) {
#ifdef SPECSSL_MPI
    if (sp_dist_size() == 1) return;
    char *p = buf;
    for (size_t o = 0; o < bytes; o += SP_DIST_CHUNK) {
        size_t m = bytes - o < SP_DIST_CHUNK ? bytes - o : SP_DIST_CHUNK;
        MPI_Bcast(p + o, (int)m, MPI_BYTE, root, MPI_COMM_WORLD);
    }
#else
    (void)buf;
    (void)bytes;
    (void)root;
#endif
}

void sp_dist_barrier(void) {
#ifdef SPECSSL_MPI
    if (sp_dist_size() == 1) return;
    MPI_Barrier(MPI_COMM_WORLD);
#endif
}

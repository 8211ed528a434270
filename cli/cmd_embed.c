/* cmd_embed.c - `specssl embed`: features (or projections) of every spectrum
 * of a dataset from a frozen encoder, in eval mode.
 *
 * The encoder is rebuilt from the config stored in the checkpoint and loaded
 * from /encoder_q (/proj_q for --output projection). The dataset is streamed
 * in batches (sequential loader); each batch is embedded with OpenMP over
 * the batch; /embeddings [N, D] (and /labels when the data has them) are
 * written atomically. Input normalisation: the checkpoint's /norm group
 * (written by pretraining) when present, else none: imported weights expect
 * spectra as stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_util.h"
#include "sp_checkpoint.h"
#include "sp_config.h"
#include "sp_data.h"
#include "sp_encoder.h"
#include "sp_h5.h"
#include "sp_log.h"

int cmd_embed(int argc, char **argv);

static SpStatus load_norm(const char *ckpt, SpNorm *nm, int *have) {
    hid_t f = -1;
    *have = 0;
    SP_TRY(sp_h5_open_read(ckpt, &f));
    SpStatus rc = SP_OK;
    if (sp_h5_exists(f, SP_GROUP_NORM)) {
        rc = norm_load(nm, f, ckpt, SP_GROUP_NORM);
        if (rc == SP_OK) *have = 1;
    }
    sp_h5_close(f);
    return rc;
}

static SpStatus run(const char *ckpt, const char *data, const char *out, int projection,
                    int batch, const SpConfig *user_cfg) {
    SpEncoder *enc = NULL;
    SpProjHead *proj = NULL;
    SpEncAct *act = NULL;
    SpProjAct *pact = NULL;
    SpDataset *ds = NULL;
    SpLoader *ld = NULL;
    SpNorm nm;
    int have_norm = 0, writer_open = 0;
    SpRowWriter w;
    float *feat = NULL, *z = NULL;
    SpStatus rc = SP_OK;
    memset(&nm, 0, sizeof nm);

    SP_TRY_GOTO(rc, encoder_load_ckpt(ckpt, NULL, NULL, &enc, projection ? &proj : NULL), done);
    SP_TRY_GOTO(rc, load_norm(ckpt, &nm, &have_norm), done);

    SpDataOptions opt;
    data_options_default(&opt);
    SP_TRY_GOTO(rc, data_options_from_config(user_cfg, &opt), done);
    opt.min_length = encoder_min_length(enc);
    SP_TRY_GOTO(rc, dataset_open(&ds, data, &opt), done);
    if (have_norm && nm.L != 0 && nm.kind == SP_NORM_STANDARDISE && nm.L != ds->L)
        SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': spectra have %d points, the checkpoint's "
                     "normalisation was fitted on %d", data, ds->L, nm.L);
    char desc[512];
    dataset_describe(ds, desc, sizeof desc);
    const int D = encoder_feature_dim(enc);
    const int Dout = projection ? encoder_proj_out_dim(proj) : D;
    sp_log(SP_LOG_INFO, "embed: %s: %s", data, desc);
    sp_log(SP_LOG_INFO, "embed: encoder %s (%zu parameters, feature %d), output %s (%d), "
           "normalisation %s", encoder_arch(enc), sp_params_count(encoder_params(enc)), D,
           projection ? "projection" : "feature", Dout,
           have_norm ? norm_name(nm.kind) : "none (not stored in the checkpoint)");

    if (batch > ds->n) batch = (int)(ds->n > 0 ? ds->n : 1);
    SP_TRY_GOTO(rc, loader_create(&ld, ds, NULL, 0, batch, 0, 0, 0, have_norm ? &nm : NULL),
                done);
    SP_TRY_GOTO(rc, loader_start_epoch(ld, 0), done);
    SP_TRY_GOTO(rc, encoder_act_create_infer(&act, enc, batch, ds->L), done);
    if (projection) SP_TRY_GOTO(rc, encoder_proj_act_create(&pact, proj, batch), done);
    feat = sp_aligned_alloc((size_t)batch * D * sizeof(float), "features");
    z = sp_aligned_alloc((size_t)batch * Dout * sizeof(float), "projections");
    if (!feat || !z) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory (embedding buffers)");
    SP_TRY_GOTO(rc, embed_writer_open(&w, out, Dout, ds->labels != NULL), done);
    writer_open = 1;

    double t0 = sp_time_now();
    int64_t done_rows = 0;
    for (;;) {
        SpBatch b;
        SP_TRY_GOTO(rc, loader_next(ld, &b), done);
        if (b.n == 0) break;
        SP_TRY_GOTO(rc, encoder_forward(enc, act, b.x, b.n, 0, feat), done);
        const float *res = feat;
        if (projection) {
            encoder_proj_forward(proj, pact, feat, b.n, z);
            res = z;
        }
        SP_TRY_GOTO(rc, embed_writer_append(&w, res, b.n, b.labels), done);
        done_rows += b.n;
    }
    SP_TRY_GOTO(rc, row_writer_commit(&w), done);
    writer_open = 0;
    double dt = sp_time_now() - t0;
    sp_log(SP_LOG_INFO, "embed: %lld spectra in %.2f s (%.0f spectra/s)", (long long)done_rows,
           dt, dt > 0 ? (double)done_rows / dt : 0.0);
    printf("wrote %s: /embeddings [%lld, %d]%s\n", out, (long long)done_rows, Dout,
           ds->labels ? " and /labels" : "");
done:
    if (writer_open) row_writer_abort(&w);
    free(feat);
    free(z);
    encoder_proj_act_destroy(&pact);
    encoder_act_destroy(&act);
    loader_free(&ld);
    dataset_close(&ds);
    if (have_norm) norm_free(&nm);
    encoder_proj_destroy(&proj);
    encoder_destroy(&enc);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *out = NULL, *output = "feature", *cfg = NULL;
    int64_t batch = 256;
    CmdStrList sets = {0};
    const CmdOpt opts[] = {
        {"ckpt", 0, CMD_STR, "CKPT.h5", "checkpoint with an encoder (pretrain or supervised)",
         &ckpt, 1},
        {"data", 0, CMD_STR, "FILE.h5", "spectra to embed (data.* keys name the datasets)", &data,
         1},
        {"out", 'o', CMD_STR, "EMB.h5", "output: /embeddings [N, D] (+ /labels)", &out, 1},
        {"output", 0, CMD_STR, "feature|projection",
         "encoder feature h (default; what the linear probe uses) or the unit-norm projection z",
         &output, 0},
        {"batch", 0, CMD_INT, "N", "spectra per batch (default 256)", &batch, 0},
        CMD_OPT_CONFIG(&cfg),
        CMD_OPT_SET(&sets),
    };
    const CmdSpec spec = {
        "embed", "--ckpt CKPT.h5 --data FILE.h5 --out EMB.h5 [--output feature|projection]",
        "features of spectra from a frozen encoder",
        "The encoder runs in eval mode (BatchNorm running statistics). Its architecture\n"
        "comes from the config stored in the checkpoint; -c/--set only affect how the\n"
        "data file is read (data.spectra_path, data.labels_path, data.load, ...).\n"
        "Normalisation: the one stored with the checkpoint (pretraining), else none.",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) {
        cmd_strlist_free(&sets);
        return rc;
    }
    int projection = 0;
    if (!strcmp(output, "projection")) projection = 1;
    else if (strcmp(output, "feature") != 0) {
        fprintf(stderr, "specssl: error: embed: --output '%s': expected feature or projection\n",
                output);
        cmd_strlist_free(&sets);
        return 2;
    }
    if (batch < 1 || batch > 1000000) {
        fprintf(stderr, "specssl: error: embed: --batch %lld: expected 1..1000000\n",
                (long long)batch);
        cmd_strlist_free(&sets);
        return 2;
    }
    SpConfig *c = NULL;
    SpStatus st = cmd_load_config(&c, cfg, &sets);
    if (st == SP_OK) {
        cmd_banner("embed", c, &sets);
        st = run(ckpt, data, out, projection, (int)batch, c);
    }
    sp_config_free(c);
    cmd_strlist_free(&sets);
    return cmd_finish(st);
}
